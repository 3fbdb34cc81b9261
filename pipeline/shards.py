"""Parquet shards of samples (`pipeline.samples`: original, added, removed), committed atomically.

A dataset is a directory (or any fsspec URL) laid out as::

    <root>/
      <name>.parquet          shard files (data; only read when committed)
      _manifest/<name>.json   one entry per committed shard: rows, sha256, bytes, ...
      _tmp/                   in-flight writes (<name>.<uuid>.parquet, entries)
      manifest.json           aggregated view for humans and tools (write_summary)

Commit protocol, safe for many writers without locks and for object stores
(only whole-object writes and renames are used):

1. write the shard to ``_tmp/<name>.<uuid>.parquet`` (fsync'd on local disks);
2. rename it to ``<name>.parquet``;
3. write ``_manifest/<name>.json`` the same way (tmp, then rename).

A shard is committed iff its entry exists and its file exists. A process killed at
any point leaves either nothing visible or an orphan that readers ignore and ``verify``
reports; ``cleanup_orphans`` removes it. Callers resume by skipping names for which
``has(name)`` is true, so deterministic shard names mean a sample is written exactly once.

Nothing is reused or read unverified: ``has`` and the readers (``entries``, ``iter_tables``,
``read_table``, and so the loader) check a committed file's size and sha256 against its entry.
A mismatch makes ``has`` false (the writer rewrites the shard) and the readers raise ShardError
naming the file. The hash is cached in ``_verified/<name>.json`` under the file's identity
(size, mtime, ctime, inode on local disks; fsspec's info elsewhere), so a re-run hashes each
file once. The cache trusts the file system's timestamps: it notices any write through the
file system, not bit rot under it; ``verify`` (``faceaug shards verify``) always hashes.

Longer than 450 lines: the commit protocol, the verified reads and ``verify`` share the entry
format and the checksum rules, so they are kept together; ``verify`` with its helpers and
``find_datasets`` is the part to move to a module of its own if this one grows further.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipeline.samples import (  # noqa: F401  (re-exported: the schema and row helpers come with the store)
    EDIT_KINDS, NUM_ATTRIBUTES, SAMPLE_SCHEMA, SCHEMA_VERSION, SHARD_NAME_RE, SPLITS, ShardEntry, ShardError,
    dataset_metadata_of, make_row, rows_to_table, sample_id_for, schema_with_metadata, validate_row, validate_table,
)

# Rows per Parquet row group: the unit of work the loader hands to workers. Small
# enough that a shard of a few thousand samples splits across workers, large
# enough that per-group overhead (a seek and a footer lookup) stays negligible.
ROW_GROUP_SIZE = 256

MANIFEST_DIR = "_manifest"
TMP_DIR = "_tmp"
VERIFIED_DIR = "_verified"  # the checksum cache, one small JSON file per verified shard
SUMMARY_FILE = "manifest.json"
_NAME_RE = SHARD_NAME_RE
# A manifest entry is a few hundred bytes; a bigger file in _manifest/ is not read into memory.
MAX_ENTRY_BYTES = 2**20
MAX_SUMMARY_BYTES = 256 * 2**20  # manifest.json: a few hundred bytes per shard
# A cached verification is trusted only for a file last modified this long before it was hashed:
# timestamps are coarse (a jiffy on Linux, 2 s on FAT), so a write in the same tick as the hash
# would leave the file's identity unchanged ("racy git"); such a file is simply hashed again.
_RACY_NS = 2 * 10**9
_HASH_CHUNK = 4 * 2**20


class CorruptShardWarning(UserWarning):
    """A committed shard failed its checksum and is not reused (it will be rewritten)."""


@dataclass
class VerifyReport:
    """Result of ShardStore.verify(): ok iff no problems (orphans count as problems)."""

    root: str
    ok: bool
    problems: list[str]
    shards: int
    rows: int
    orphans: list[str] = field(default_factory=list)

    def format(self) -> str:
        head = (f"{self.root}: {'OK' if self.ok else 'PROBLEMS'} — {self.shards} committed shards, "
                f"{self.rows} rows")
        if self.ok:
            return head
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class ShardStore:
    """A dataset of Parquet shards under a local path or fsspec URL.

    `metadata` is the dataset-level dict (e.g. resolved run config, editor name)
    written into every new shard's schema metadata as ``faceaug.dataset``.
    """

    def __init__(self, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None):
        self.path = str(path)
        self.fs, root = fsspec.core.url_to_fs(self.path)
        self.root = root.rstrip("/") or "/"
        self._metadata = dict(metadata) if metadata is not None else None
        self._local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ShardStore({self.path!r})"

    # -- paths -------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def shard_path(self, name: str) -> str:
        return self._p(f"{name}.parquet")

    def _entry_path(self, name: str) -> str:
        return self._p(MANIFEST_DIR, f"{name}.json")

    def url_of(self, entry: ShardEntry) -> str:
        """Full path of a shard file, usable with self.fs."""
        return self._p(entry.file)

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name) or name.endswith(".parquet") or name.endswith(".json"):
            raise ShardError(f"invalid shard name {name!r}: use letters, digits and . _ = - "
                             "(no slashes, no leading _ or ., no extension)")

    # -- low-level atomic writes -------------------------------------------
    def _write_bytes_atomic(self, data: bytes, final: str, tmp_name: str) -> None:
        tmp = self._p(TMP_DIR, tmp_name)
        self.fs.makedirs(self._p(TMP_DIR), exist_ok=True)
        if self._local:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)  # atomic on POSIX, replaces a stale orphan
            _fsync_dir(os.path.dirname(final))
        else:
            self.fs.pipe_file(tmp, data)
            parent = final.rsplit("/", 1)[0]
            self.fs.makedirs(parent, exist_ok=True)
            self.fs.mv(tmp, final)

    # -- metadata ----------------------------------------------------------
    def metadata(self) -> dict:
        """Dataset metadata: the one given to the constructor, else the first shard's."""
        if self._metadata is not None:
            return dict(self._metadata)
        entries = self.entries()
        if not entries:
            return {}
        with self._arrow_source(entries[0]) as f:
            return dataset_metadata_of(pq.read_schema(f))

    # -- writing -----------------------------------------------------------
    def write_shard(
        self,
        name: str,
        rows_or_table: pa.Table | Iterable[Mapping[str, Any]],
        *,
        overwrite: bool = False,
        shard_metadata: Mapping[str, Any] | None = None,
        row_group_size: int = ROW_GROUP_SIZE,
    ) -> ShardEntry:
        """Validate, write and commit one shard; return its manifest entry.

        Raises FileExistsError if `name` is already committed and not `overwrite`.
        `shard_metadata` (JSON-serialisable) is kept in the entry, e.g. the input range.
        """
        self._check_name(name)
        if not overwrite and self._problem_of(name) is None:
            raise FileExistsError(f"{self.shard_path(name)}: shard {name!r} is already committed "
                                  "(pass overwrite=True to replace it)")
        meta = self._metadata if self._metadata is not None else {}
        if isinstance(rows_or_table, pa.Table):
            table = validate_table(rows_or_table, meta)
        else:
            table = rows_to_table(rows_or_table, meta)
        if table.num_rows == 0:
            raise ShardError(f"shard {name!r}: no rows to write")

        buf = pa.BufferOutputStream()  # Arrow-owned memory, see _arrow_source
        pq.write_table(table, buf, row_group_size=row_group_size, compression="none",
                       write_statistics=["split", "edit_kind", "identity"])
        data = buf.getvalue().to_pybytes()
        # Image bytes are already compressed, so Parquet compression would only
        # cost CPU at read time; the small columns are tiny either way.
        counts: dict[str, int] = {}
        for s, k in zip(table["split"].to_pylist(), table["edit_kind"].to_pylist()):
            counts[f"{s}/{k}"] = counts.get(f"{s}/{k}", 0) + 1
        md = pq.ParquetFile(pa.BufferReader(_arrow_buffer(data))).metadata
        entry = ShardEntry(
            name=name, file=f"{name}.parquet", rows=table.num_rows, sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data), schema_version=SCHEMA_VERSION,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            row_groups=tuple(md.row_group(i).num_rows for i in range(md.num_row_groups)),
            counts=dict(sorted(counts.items())), metadata=dict(shard_metadata or {}),
        )
        token = uuid.uuid4().hex
        if self.fs.exists(self._entry_path(name)):
            # Replaced (overwrite) or stale (its file failed its checksum): uncommit first, so a
            # crash between here and step 3 leaves an orphan, never an entry describing the wrong file.
            self.fs.rm(self._entry_path(name))
        self._write_bytes_atomic(data, self.shard_path(name), f"{name}.{token}.parquet")  # 1 + 2
        entry_bytes = json.dumps(entry.to_json(), indent=1, sort_keys=True).encode()
        self._write_bytes_atomic(entry_bytes, self._entry_path(name), f"{name}.{token}.json")  # 3
        identity = self._identity(self.shard_path(name))
        identity.pop("regular")
        self._remember(entry, identity)
        return entry

    # -- reading -----------------------------------------------------------
    def _ls(self, *parts: str) -> dict[str, int]:
        """basename -> size of the files in a store folder ({} if it does not exist)."""
        path = self._p(*parts) if parts else self.root
        try:
            infos = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return {}
        return {i["name"].rstrip("/").rsplit("/", 1)[-1]: int(i.get("size") or 0)
                for i in infos if i.get("type") == "file"}

    def _small_file(self, path: str, limit: int) -> bytes:
        """A small bookkeeping file's bytes; ShardError if it is not a regular file (a FIFO would block the
        read) or is larger than `limit`, FileNotFoundError if it is missing."""
        info = self.fs.info(path)
        if info.get("type") != "file":
            raise ShardError(f"is not a regular file ({info.get('type')})")
        if int(info.get("size") or 0) > limit:
            raise ShardError(f"is larger than {limit} bytes, too large for what it should be")
        return self.fs.cat_file(path)

    def _read_entry(self, path: str) -> ShardEntry:
        """One manifest entry file, validated (ShardError, or OSError/ValueError from the file system)."""
        try:
            return ShardEntry.from_json(json.loads(self._small_file(path, MAX_ENTRY_BYTES)))
        except RecursionError:  # json.loads on thousands of nested brackets
            raise ShardError("nested too deeply to be a manifest entry") from None

    def _read_entries(self) -> tuple[dict[str, ShardEntry], list[str]]:
        """All valid manifest entries by name, and problems with the others."""
        entries: dict[str, ShardEntry] = {}
        problems: list[str] = []
        for fname in sorted(self._ls(MANIFEST_DIR)):
            if not fname.endswith(".json"):
                continue
            path = self._p(MANIFEST_DIR, fname)
            try:
                entry = self._read_entry(path)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                problems.append(f"{path}: unreadable manifest entry ({exc})")
                continue
            if entry.name != fname[: -len(".json")]:
                problems.append(f"{path}: entry names shard {entry.name!r}, not {fname[:-5]!r}")
                continue
            entries[entry.name] = entry
        return entries, problems

    def _committed(self) -> list[ShardEntry]:
        """Entries whose file exists, sorted by name (not yet checked against the file)."""
        files = self._ls()
        found, _ = self._read_entries()
        return [e for n, e in sorted(found.items()) if e.file in files]

    def entries(self) -> list[ShardEntry]:
        """Committed shards, sorted by name, each verified against its entry (size and sha256).

        Raises ShardError naming every committed file that fails, and every unreadable manifest
        entry (whose shard would otherwise drop out unseen): a reader never gets partial data.
        """
        files = self._ls()
        found, bad = self._read_entries()
        out = []
        for _, entry in sorted(found.items()):
            if entry.file not in files:
                continue  # never committed, or a crash mid-overwrite: an orphan entry (see cleanup_orphans)
            why = self.checksum_problem(entry)
            if why is None:
                out.append(entry)
            else:
                bad.append(f"{self.url_of(entry)}: {why}")
        if bad:
            raise ShardError(f"{self.path}: refusing to read a dataset with {len(bad)} corrupted shard"
                             f"{'s' if len(bad) > 1 else ''} or manifest entr{'ies' if len(bad) > 1 else 'y'}:\n  "
                             + "\n  ".join(bad) + f"\n`faceaug shards verify {self.path}` lists every problem; re-run "
                             "the stage that wrote this dataset to rewrite what is corrupted.")
        return out

    def has(self, name: str, progress: Callable[[str], None] | None = None) -> bool:
        """True iff shard `name` is committed and its file verifies (callers skip it on resume).

        A committed shard whose file fails its checksum is reported (to `progress`, else as a
        CorruptShardWarning) and counts as not written, so the caller writes it again.
        """
        why = self._problem_of(name)
        if why is not None and why != "not committed":
            message = f"{self.shard_path(name)}: {why}; not reused, it is rewritten"
            if progress is not None:
                progress(message)
            else:
                warnings.warn(message, CorruptShardWarning, stacklevel=2)
        return why is None

    def _problem_of(self, name: str) -> str | None:
        """None if shard `name` is committed and verifies; "not committed"; or what is wrong with its file."""
        path = self._entry_path(name)
        try:
            if not self.fs.exists(path) or not self.fs.exists(self.shard_path(name)):
                return "not committed"
            entry = self._read_entry(path)
        except (ValueError, KeyError, TypeError, OSError):
            return "not committed"  # an unreadable entry commits nothing; verify() reports it
        if entry.name != name:
            return "not committed"
        return self.checksum_problem(entry)

    def _arrow_source(self, entry: ShardEntry) -> pa.NativeFile:
        """What pyarrow reads a shard from: Arrow's own file on local disks, else the remote file's bytes
        copied into an Arrow-owned buffer. Never a Python object (see `_arrow_buffer`)."""
        path = self.url_of(entry)
        return pa.OSFile(path) if self._local else pa.BufferReader(_arrow_buffer(self.fs.cat_file(path)))

    # -- the checksum cache --------------------------------------------------
    def checksum_problem(self, entry: ShardEntry) -> str | None:
        """None if the shard file has the size and sha256 its entry records (hashed at most once per file
        identity, see the module docstring); else what is wrong."""
        path = self.url_of(entry)
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

    def _identity(self, path: str) -> dict:
        """What changes whenever the file is written or replaced."""
        if self._local:
            st = os.stat(path)
            return {"regular": stat.S_ISREG(st.st_mode), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev}
        info = self.fs.info(path)
        return {"regular": info.get("type") == "file", "size": int(info.get("size") or 0),
                "info": json.loads(json.dumps(info, sort_keys=True, default=str))}

    def _cached(self, entry: ShardEntry, identity: dict) -> bool:
        try:
            seen = json.loads(self._small_file(self._p(VERIFIED_DIR, f"{entry.name}.json"), MAX_ENTRY_BYTES))
        except (OSError, ValueError, RecursionError):  # ShardError is a ValueError
            return False  # no cache, or a torn or foreign one: hash again
        if not isinstance(seen, dict) or seen.get("sha256") != entry.sha256 or seen.get("identity") != identity:
            return False
        verified = seen.get("verified_ns")
        racy = "mtime_ns" in identity and (not isinstance(verified, int) or verified - identity["mtime_ns"] <= _RACY_NS)
        return not racy

    def _remember(self, entry: ShardEntry, identity: dict) -> None:
        data = json.dumps({"sha256": entry.sha256, "identity": identity, "verified_ns": time.time_ns()}).encode()
        final = self._p(VERIFIED_DIR, f"{entry.name}.json")
        try:  # a cache: a read-only store, or a write racing cleanup_orphans, only costs a hash next time
            if self._local:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                tmp = f"{final}.{uuid.uuid4().hex}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, final)
            else:
                self.fs.pipe_file(final, data)
        except OSError:
            pass

    def num_rows(self) -> int:
        return sum(e.rows for e in self.entries())

    def manifest(self) -> dict:
        """The aggregated dataset view: {"shards": [entry dicts], "rows": N, ...}."""
        entries = self.entries()
        counts: dict[str, int] = {}
        for e in entries:
            for k, n in e.counts.items():
                counts[k] = counts.get(k, 0) + n
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.metadata(),
            "rows": sum(e.rows for e in entries),
            "counts": dict(sorted(counts.items())),
            "shards": [e.to_json() for e in entries],
        }

    def write_json(self, name: str, obj: Any) -> None:
        """Write a small JSON file beside the shards (a summary, the config), atomically, on any filesystem."""
        self._write_bytes_atomic((json.dumps(obj, indent=2) + "\n").encode(), self._p(name), f"{name}.{uuid.uuid4().hex}")

    def read_bytes(self, name: str) -> bytes | None:
        """A file beside the shards, or None if there is none."""
        try:
            with self.fs.open(self._p(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_summary(self) -> dict:
        """Write manifest.json (the aggregated view) atomically; return it."""
        summary = self.manifest()
        data = json.dumps(summary, indent=1, sort_keys=True).encode()
        self._write_bytes_atomic(data, self._p(SUMMARY_FILE), f"{SUMMARY_FILE}.{uuid.uuid4().hex}")
        return summary

    def iter_tables(self, columns: Sequence[str] | None = None) -> Iterator[tuple[ShardEntry, pa.Table]]:
        """(entry, table) for each committed shard, in name order."""
        for entry in self.entries():
            with self._arrow_source(entry) as f:
                table = pq.read_table(f, columns=list(columns) if columns else None)
            yield entry, table

    def read_table(self, columns: Sequence[str] | None = None, filter_split: str | None = None) -> pa.Table:
        """All committed rows as one table (optionally only one split)."""
        cols = list(columns) if columns else None
        if cols and filter_split and "split" not in cols:
            cols = cols + ["split"]
        tables = []
        for _, t in self.iter_tables(cols):
            if filter_split is not None:
                t = t.filter(pc.equal(t["split"], filter_split))
            tables.append(t)
        if not tables:
            schema = schema_with_metadata(self.metadata())
            empty = schema.empty_table()
            return empty.select(cols) if cols else empty
        out = pa.concat_tables(tables)
        if columns and filter_split and "split" not in columns:
            out = out.drop_columns(["split"])
        return out

    # -- checking ----------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Hash and parse every committed shard (bytes, rows, row groups, counts, schema, sample_id
        uniqueness), check manifest.json against the entries, and find orphans. Never raises on bad data."""
        problems: list[str] = []
        if not self.fs.exists(self.root):
            return VerifyReport(root=self.path, ok=False, problems=[f"{self.path}: does not exist"], shards=0, rows=0)
        if not self.fs.isdir(self.root):
            return VerifyReport(root=self.path, ok=False, problems=[f"{self.path}: is not a directory"], shards=0, rows=0)
        files = self._ls()
        entries, entry_problems = self._read_entries()
        if not self.fs.isdir(self._p(MANIFEST_DIR)):
            problems.append(f"{self._p(MANIFEST_DIR)}: missing, so nothing here is committed"
                            + (f" ({sum(f.endswith('.parquet') for f in files)} shard files without entries)" if files else ""))
        problems.extend(entry_problems)
        orphans, orphan_problems = self._orphans(files, entries)
        seen: dict[str, str] = {}
        n_shards = n_rows = 0
        dataset: dict | None = None
        for name, entry in sorted(entries.items()):
            if entry.file not in files:
                continue  # an orphan entry, reported by _orphans
            path = self.url_of(entry)
            found = self._check_shard(path, entry, seen)
            problems.extend(found[0])
            if dataset is None:
                dataset = found[1]
            if not found[0]:
                n_shards += 1
                n_rows += entry.rows
        problems.extend(orphan_problems)
        committed = [e for _, e in sorted(entries.items()) if e.file in files]
        if not committed and not problems:
            problems.append(f"{self.path}: no committed shards (an empty or never-written dataset)")
        problems.extend(self._check_summary(committed, dataset or {}))
        return VerifyReport(root=self.path, ok=not problems, problems=problems, shards=n_shards,
                            rows=n_rows, orphans=orphans)

    def _check_shard(self, path: str, entry: ShardEntry, seen: dict[str, str]) -> tuple[list[str], dict | None]:
        """Problems with one committed shard file, and its dataset metadata (None if unreadable)."""
        problems: list[str] = []
        data = self.fs.cat_file(path)
        if len(data) != entry.bytes:
            problems.append(f"{path}: size {len(data)} bytes, manifest says {entry.bytes}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            problems.append(f"{path}: sha256 mismatch (file {digest[:12]}…, manifest {entry.sha256[:12]}…)")
        try:
            pf = pq.ParquetFile(pa.BufferReader(_arrow_buffer(data)))
            if pf.metadata.num_rows != entry.rows:
                problems.append(f"{path}: {pf.metadata.num_rows} rows, manifest says {entry.rows}")
            groups = tuple(pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups))
            if entry.row_groups and groups != entry.row_groups:
                problems.append(f"{path}: row groups {list(groups)}, manifest says {list(entry.row_groups)}")
            if not pf.schema_arrow.equals(SAMPLE_SCHEMA, check_metadata=False):
                problems.append(f"{path}: schema does not match SAMPLE_SCHEMA")
                return problems, None
            table = pf.read(columns=["sample_id", "split", "edit_kind"])
            dataset = dataset_metadata_of(pf.schema_arrow)
        except Exception as exc:  # noqa: BLE001 — any parse failure is a corrupt shard, reported by file
            problems.append(f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})")
            return problems, None
        counts: dict[str, int] = {}
        for s, k in zip(table["split"].to_pylist(), table["edit_kind"].to_pylist()):
            counts[f"{s}/{k}"] = counts.get(f"{s}/{k}", 0) + 1
        if entry.counts and counts != entry.counts:
            problems.append(f"{path}: rows per split/edit_kind {dict(sorted(counts.items()))}, manifest says {entry.counts}")
        for sid in table["sample_id"].to_pylist():
            if sid in seen:
                where = "twice in this shard" if seen[sid] == path else f"also in {seen[sid]}"
                problems.append(f"{path}: duplicate sample_id {sid!r} ({where})")
            else:
                seen[sid] = path
        return problems, dataset

    def _check_summary(self, committed: list[ShardEntry], dataset: dict) -> list[str]:
        """manifest.json (if written) must be what write_summary writes for these entries. Of "dataset" only the
        "key" is compared: the rest is the latest writer's metadata (a resumed run's config may differ in
        settings that do not change rows, such as workers), while each shard keeps its own writer's."""
        path = self._p(SUMMARY_FILE)
        try:
            on_disk = json.loads(self._small_file(path, MAX_SUMMARY_BYTES))
        except FileNotFoundError:
            return []  # optional: written when a stage finishes; verify checks the entries themselves
        except ShardError as exc:
            return [f"{path}: {exc}"]
        except (ValueError, RecursionError) as exc:
            return [f"{path}: not valid JSON ({exc})"]
        counts: dict[str, int] = {}
        for e in committed:
            for k, n in e.counts.items():
                counts[k] = counts.get(k, 0) + n
        expected = {"schema_version": SCHEMA_VERSION, "dataset": dataset, "rows": sum(e.rows for e in committed),
                    "counts": dict(sorted(counts.items())), "shards": [e.to_json() for e in committed]}
        if not isinstance(on_disk, dict):
            return [f"{path}: must be a JSON object (the summary of the committed shards), found {type(on_disk).__name__}"]
        differ = sorted(k for k in expected.keys() | on_disk.keys() if k != "dataset" and on_disk.get(k) != expected.get(k))
        written = on_disk.get("dataset")
        if not isinstance(written, dict) or written.get("key") != dataset.get("key"):
            differ.append("dataset.key")
        if not differ:
            return []
        listed = {s.get("name") if isinstance(s, dict) else repr(s) for s in on_disk.get("shards", [])} \
            if isinstance(on_disk.get("shards"), list) else set()
        names = {e.name for e in committed}
        detail = "; ".join(x for x in (
            f"fields that differ: {', '.join(differ)}",
            f"lists shards with no committed entry: {sorted(map(str, listed - names))}" if listed - names else "",
            f"omits committed shards: {sorted(names - listed)}" if names - listed else "") if x)
        return [f"{path}: does not match the committed shards' entries ({detail}); edited by hand, or stale from "
                "before a later write: re-run the stage that wrote the dataset to rewrite it"]

    def _orphans(self, files: dict[str, int], entries: dict[str, ShardEntry]) -> tuple[list[str], list[str]]:
        """Paths a killed writer left (from listings only, nothing is read) and a problem for each."""
        orphans, problems = [], []
        for name, entry in sorted(entries.items()):
            if entry.file not in files:
                problems.append(f"{self.url_of(entry)}: manifest entry exists but the shard file is missing")
                orphans.append(self._entry_path(name))
        committed_files = {e.file for e in entries.values()}
        for fname in sorted(files):
            if fname.endswith(".parquet") and fname not in committed_files:
                path = self._p(fname)
                problems.append(f"{path}: orphan shard file with no manifest entry (never committed)")
                orphans.append(path)
        for fname in sorted(self._ls(TMP_DIR)):
            path = self._p(TMP_DIR, fname)
            problems.append(f"{path}: leftover temporary file from an interrupted write")
            orphans.append(path)
        return orphans, problems

    def cleanup_orphans(self) -> list[str]:
        """Remove temporary files, uncommitted shard files and entries without a file.

        Call it on resume before starting writers: it would also remove the
        temporary file of a write in progress. Only listings are read (no hashing).
        """
        entries, _ = self._read_entries()
        orphans, _ = self._orphans(self._ls(), entries)
        removed = []
        for path in orphans:
            try:
                self.fs.rm(path)
                removed.append(path)
            except FileNotFoundError:
                pass
        return removed


def find_datasets(path: str) -> list[str]:
    """`path` if it is a shard dataset, else the datasets one level below it (local path or fsspec URL).

    A folder is a dataset if it holds any of _manifest/, _tmp/, manifest.json or a .parquet file,
    so one whose _manifest/ was deleted is still found (and fails verify). Raises FileNotFoundError
    or NotADirectoryError for a path that is not a folder.
    """
    fs, root = fsspec.core.url_to_fs(str(path))
    if not fs.exists(root):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not fs.isdir(root):
        raise NotADirectoryError(f"{path}: is not a directory")

    def is_dataset(folder: str) -> bool:
        names = {i["name"].rstrip("/").rsplit("/", 1)[-1]: i.get("type") for i in fs.ls(folder, detail=True)}
        return (names.get(MANIFEST_DIR) == "directory" or names.get(TMP_DIR) == "directory" or SUMMARY_FILE in names
                or any(n.endswith(".parquet") and t == "file" for n, t in names.items()))

    if is_dataset(root):
        return [str(path)]
    prefix = str(path).rstrip("/")
    return [f"{prefix}/{i['name'].rstrip('/').rsplit('/', 1)[-1]}" for i in sorted(fs.ls(root, detail=True), key=lambda i: i["name"])
            if i.get("type") == "directory" and is_dataset(i["name"])]


def ensure_resumable(path: str, key: Mapping[str, Any]) -> None:
    """Refuse to resume (or reuse) a dataset whose committed shards were written with another `key`.

    Stages store the parameters that determine their rows under the dataset metadata's "key";
    resuming with different ones would mix, say, 64 px and 48 px images in one dataset. The key is
    read from a shard that verifies: corrupted ones are the caller's to rewrite (see ShardStore.has).
    """
    store = ShardStore(path)
    good = [e for e in store._committed() if store.checksum_problem(e) is None]
    if not good:
        return
    with store._arrow_source(good[0]) as f:
        existing = dataset_metadata_of(pq.read_schema(f)).get("key")
    if existing != json.loads(json.dumps(dict(key))):
        raise ShardError(
            f"{path} already holds shards written with {json.dumps(existing, sort_keys=True)}; this run asks for "
            f"{json.dumps(dict(key), sort_keys=True)}. Use another output_dir, or delete {path} to rebuild it."
        )


def _arrow_buffer(data: bytes) -> pa.Buffer:
    """`data` copied into memory Arrow owns.

    A Python-owned buffer (pa.BufferReader(bytes), a Python file object) handed to pyarrow is
    released by whichever Arrow pool thread drops the last reference, and releasing it takes the
    GIL. After a threaded read that can happen just as the interpreter finalizes; CPython then
    ends that thread with pthread_exit, whose unwinding through Arrow's noexcept destructor
    (arrow::py::PyBuffer::~PyBuffer) calls std::terminate: "terminate called without an active
    exception", status 134, after the command had printed its result (1 run in ~100 of
    `faceaug shards verify`, found in a core dump). Arrow-owned memory needs no GIL to free.
    """
    out = pa.BufferOutputStream()
    out.write(data)
    return out.getvalue()


def _fsync_dir(path: str) -> None:
    """Make a rename durable on local POSIX filesystems (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
