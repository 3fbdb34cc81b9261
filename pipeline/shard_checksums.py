"""The checksum cache of a shard dataset (`pipeline.shards`): which committed files were hashed, and when.

Nothing is reused or read unverified, but hashing every shard on every read would make a re-run
read the whole dataset twice. So a file whose sha256 matched its entry is remembered in
``_verified/<name>.json`` under the file's identity (size, mtime, ctime, inode on local disks;
fsspec's info elsewhere), and hashed again only when that identity changes. The cache trusts the
file system's timestamps: it notices any write through the file system, not bit rot under it;
``faceaug shards verify`` always hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
import uuid

from pipeline.samples import ShardEntry

# A cached verification is trusted only for a file last modified this long before it was hashed:
# timestamps are coarse (a jiffy on Linux, 2 s on FAT), so a write in the same tick as the hash
# would leave the file's identity unchanged ("racy git"); such a file is simply hashed again.
_RACY_NS = 2 * 10**9
_HASH_CHUNK = 4 * 2**20
_MAX_RECORD_BYTES = 2**20  # a record is a few hundred bytes; a bigger file is not read into memory


class ChecksumCache:
    """The verified-checksum records of one dataset, kept in `folder` (one small JSON file per shard)."""

    def __init__(self, fs, folder: str, *, local: bool):
        self.fs, self.folder, self.local = fs, folder, local

    def problem(self, entry: ShardEntry, path: str) -> str | None:
        """None if the file at `path` has the size and sha256 `entry` records (hashed at most once per file
        identity); else what is wrong."""
        try:
            identity = self._identity(path)
        except FileNotFoundError:
            return "the committed shard file is missing"
        if not identity.pop("regular"):
            return "failed its checksum: the shard path is not a regular file"
        if identity["size"] != entry.bytes:
            return f"failed its checksum: size {identity['size']} bytes, the manifest entry says {entry.bytes}"
        if self._cached(entry, identity):
            return None
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as f:
            for block in iter(lambda: f.read(_HASH_CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != entry.sha256:
            return (f"failed its checksum: sha256 {digest.hexdigest()[:12]}…, the manifest entry says "
                    f"{entry.sha256[:12]}…")
        self._remember(entry, identity)
        return None

    def remember(self, entry: ShardEntry, path: str) -> None:
        """Record that the file at `path` was just written with `entry`'s sha256 (so it is not hashed again)."""
        identity = self._identity(path)
        identity.pop("regular")
        self._remember(entry, identity)

    def _identity(self, path: str) -> dict:
        """What changes whenever the file is written or replaced."""
        if self.local:
            st = os.stat(path)
            return {"regular": stat.S_ISREG(st.st_mode), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev}
        info = self.fs.info(path)
        return {"regular": info.get("type") == "file", "size": int(info.get("size") or 0),
                "info": json.loads(json.dumps(info, sort_keys=True, default=str))}

    def _cached(self, entry: ShardEntry, identity: dict) -> bool:
        path = f"{self.folder}/{entry.name}.json"
        try:
            info = self.fs.info(path)
            if info.get("type") != "file" or int(info.get("size") or 0) > _MAX_RECORD_BYTES:
                return False  # a FIFO would block the read; a huge file is not ours
            seen = json.loads(self.fs.cat_file(path))
        except (OSError, ValueError, RecursionError):
            return False  # no record, or a torn or foreign one: hash again
        if not isinstance(seen, dict) or seen.get("sha256") != entry.sha256 or seen.get("identity") != identity:
            return False
        verified = seen.get("verified_ns")
        racy = "mtime_ns" in identity and (not isinstance(verified, int) or verified - identity["mtime_ns"] <= _RACY_NS)
        return not racy

    def _remember(self, entry: ShardEntry, identity: dict) -> None:
        data = json.dumps({"sha256": entry.sha256, "identity": identity, "verified_ns": time.time_ns()}).encode()
        final = f"{self.folder}/{entry.name}.json"
        try:  # a cache: a read-only store, or a write racing cleanup_orphans, only costs a hash next time
            if self.local:
                os.makedirs(self.folder, exist_ok=True)
                tmp = f"{final}.{uuid.uuid4().hex}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, final)
            else:
                self.fs.pipe_file(final, data)
        except OSError:
            pass
