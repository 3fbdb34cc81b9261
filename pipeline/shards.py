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
naming the file. The hash is cached in ``_verified/<name>.json`` (`pipeline.shard_checksums`), so
a re-run hashes each file once; ``verify`` (`pipeline.shard_verify`, ``faceaug shards verify``)
always hashes. Readers bring shards of an older schema version to the current one
(`pipeline.samples.upgrade_table`), one shard at a time, so a dataset resumed across an upgrade
reads as one.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipeline.samples import (  # noqa: F401  (re-exported: the schema and row helpers come with the store)
    EDIT_KINDS, NUM_ATTRIBUTES, SAMPLE_SCHEMA, SCHEMA_VERSION, SCHEMAS, SHARD_NAME_RE, SPLITS, ShardEntry, ShardError,
    dataset_metadata_of, image_bytes, make_row, rows_to_table, sample_id_for, schema_with_metadata, upgrade_table,
    validate_row, validate_table,
)
from pipeline.atomic import fsync_dir
from pipeline.shard_checksums import ChecksumCache

if TYPE_CHECKING:
    from pipeline.shard_verify import VerifyReport

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


class CorruptShardWarning(UserWarning):
    """A committed shard failed its checksum and is not reused (it will be rewritten)."""


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
        self._checksums = ChecksumCache(self.fs, self._p(VERIFIED_DIR), local=self._local)

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
            fsync_dir(os.path.dirname(final))
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
        with self.open_shard(entries[0]) as f:
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

        buf = pa.BufferOutputStream()  # Arrow-owned memory, see open_shard
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
        self._checksums.remember(entry, self.shard_path(name))
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

    def open_shard(self, entry: ShardEntry) -> pa.NativeFile:
        """What pyarrow reads a shard from (the caller closes it): Arrow's own file on local disks, else the
        remote file's bytes copied into an Arrow-owned buffer. Never a Python object (see `_arrow_buffer`)."""
        path = self.url_of(entry)
        return pa.OSFile(path) if self._local else pa.BufferReader(_arrow_buffer(self.fs.cat_file(path)))

    def checksum_problem(self, entry: ShardEntry) -> str | None:
        """None if the shard file has the size and sha256 its entry records (hashed at most once per file
        identity, see `pipeline.shard_checksums`); else what is wrong."""
        return self._checksums.problem(entry, self.url_of(entry))

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
        """(entry, table) for each committed shard, in name order, in the current schema (`upgrade_table`)."""
        for entry in self.entries():
            with self.open_shard(entry) as f:
                table = pq.read_table(f, columns=list(columns) if columns else None)
            yield entry, upgrade_table(table)

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
        """Hash and parse every committed shard and find orphans (`pipeline.shard_verify.verify`); never raises
        on bad data."""
        from pipeline.shard_verify import verify  # the companion module, which imports this one

        return verify(self)

    def cleanup_orphans(self) -> list[str]:
        """Remove temporary files, uncommitted shard files and entries without a file.

        Call it on resume before starting writers: it would also remove the
        temporary file of a write in progress. Only listings are read (no hashing).
        """
        from pipeline.shard_verify import orphans  # the companion module, which imports this one

        entries, _ = self._read_entries()
        paths, _ = orphans(self, self._ls(), entries)
        removed = []
        for path in paths:
            try:
                self.fs.rm(path)
                removed.append(path)
            except FileNotFoundError:
                pass
        return removed


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
    with store.open_shard(good[0]) as f:
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

