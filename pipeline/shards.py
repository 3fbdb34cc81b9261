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

A shard is committed iff its entry exists and its file exists with the byte size
the entry records (``verify`` also checks the sha256 and the row count). A process
killed at any point leaves either nothing visible or an orphan that readers ignore
and ``verify`` reports; ``cleanup_orphans`` removes it. Callers resume by skipping
names for which ``has(name)`` is true, so deterministic shard names mean a sample
is written exactly once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipeline.samples import (  # noqa: F401  (re-exported: the schema and row helpers come with the store)
    EDIT_KINDS, NUM_ATTRIBUTES, SAMPLE_SCHEMA, SCHEMA_VERSION, SPLITS, ShardError, dataset_metadata_of, make_row,
    rows_to_table, sample_id_for, schema_with_metadata, validate_row, validate_table,
)

# Rows per Parquet row group: the unit of work the loader hands to workers. Small
# enough that a shard of a few thousand samples splits across workers, large
# enough that per-group overhead (a seek and a footer lookup) stays negligible.
ROW_GROUP_SIZE = 256

MANIFEST_DIR = "_manifest"
TMP_DIR = "_tmp"
SUMMARY_FILE = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*$")


@dataclass(frozen=True)
class ShardEntry:
    """A committed shard's manifest entry (``_manifest/<name>.json``)."""

    name: str
    file: str  # relative to the store root: "<name>.parquet"
    rows: int
    sha256: str
    bytes: int
    schema_version: str
    created: str
    row_groups: tuple[int, ...]  # rows per row group, in order
    counts: dict[str, int]  # "split/edit_kind" -> rows
    metadata: dict = field(default_factory=dict)  # the caller's per-shard metadata

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["row_groups"] = list(self.row_groups)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ShardEntry":
        return cls(
            name=d["name"], file=d["file"], rows=int(d["rows"]), sha256=d["sha256"], bytes=int(d["bytes"]),
            schema_version=str(d["schema_version"]), created=d["created"],
            row_groups=tuple(int(n) for n in d.get("row_groups", ())),
            counts={k: int(v) for k, v in d.get("counts", {}).items()}, metadata=dict(d.get("metadata", {})),
        )


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
        with self.fs.open(self.url_of(entries[0]), "rb") as f:
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
        if self.has(name) and not overwrite:
            raise FileExistsError(f"{self.shard_path(name)}: shard {name!r} is already committed "
                                  "(pass overwrite=True to replace it)")
        meta = self._metadata if self._metadata is not None else {}
        if isinstance(rows_or_table, pa.Table):
            table = validate_table(rows_or_table, meta)
        else:
            table = rows_to_table(rows_or_table, meta)
        if table.num_rows == 0:
            raise ShardError(f"shard {name!r}: no rows to write")

        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=row_group_size, compression="none",
                       write_statistics=["split", "edit_kind", "identity"])
        data = buf.getvalue()
        # Image bytes are already compressed, so Parquet compression would only
        # cost CPU at read time; the small columns are tiny either way.
        counts: dict[str, int] = {}
        for s, k in zip(table["split"].to_pylist(), table["edit_kind"].to_pylist()):
            counts[f"{s}/{k}"] = counts.get(f"{s}/{k}", 0) + 1
        md = pq.ParquetFile(pa.BufferReader(data)).metadata
        entry = ShardEntry(
            name=name, file=f"{name}.parquet", rows=table.num_rows, sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data), schema_version=SCHEMA_VERSION,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            row_groups=tuple(md.row_group(i).num_rows for i in range(md.num_row_groups)),
            counts=dict(sorted(counts.items())), metadata=dict(shard_metadata or {}),
        )
        token = uuid.uuid4().hex
        if overwrite and self.fs.exists(self._entry_path(name)):
            # Uncommit first: a crash between here and step 3 leaves an orphan, never a
            # committed entry that describes the wrong file.
            self.fs.rm(self._entry_path(name))
        self._write_bytes_atomic(data, self.shard_path(name), f"{name}.{token}.parquet")  # 1 + 2
        entry_bytes = json.dumps(entry.to_json(), indent=1, sort_keys=True).encode()
        self._write_bytes_atomic(entry_bytes, self._entry_path(name), f"{name}.{token}.json")  # 3
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

    def _read_entries(self) -> tuple[dict[str, ShardEntry], list[str]]:
        """All parseable manifest entries by name, and problems with unparseable ones."""
        entries: dict[str, ShardEntry] = {}
        problems: list[str] = []
        for fname in sorted(self._ls(MANIFEST_DIR)):
            if not fname.endswith(".json"):
                continue
            path = self._p(MANIFEST_DIR, fname)
            try:
                entry = ShardEntry.from_json(json.loads(self.fs.cat_file(path)))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"{path}: unreadable manifest entry ({exc})")
                continue
            if entry.name != fname[: -len(".json")]:
                problems.append(f"{path}: entry names shard {entry.name!r}, not {fname[:-5]!r}")
                continue
            entries[entry.name] = entry
        return entries, problems

    def entries(self) -> list[ShardEntry]:
        """Committed shards, sorted by name: an entry whose file exists with the recorded size."""
        files = self._ls()
        found, _ = self._read_entries()
        return [e for n, e in sorted(found.items()) if files.get(e.file) == e.bytes]

    def has(self, name: str) -> bool:
        """True iff shard `name` is committed (callers skip it on resume)."""
        path = self._entry_path(name)
        if not self.fs.exists(path):
            return False
        try:
            entry = ShardEntry.from_json(json.loads(self.fs.cat_file(path)))
            return self.fs.size(self.shard_path(name)) == entry.bytes
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return False

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
            with self.fs.open(self.url_of(entry), "rb") as f:
                yield entry, pq.read_table(f, columns=list(columns) if columns else None)

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
        """Check every committed shard's bytes, rows, schema, and sample_id uniqueness; find orphans."""
        problems: list[str] = []
        orphans: list[str] = []
        files = self._ls()
        entries, entry_problems = self._read_entries()
        problems.extend(entry_problems)
        seen: dict[str, str] = {}
        n_shards = n_rows = 0
        for name, entry in sorted(entries.items()):
            path = self.url_of(entry)
            if entry.file not in files:
                problems.append(f"{path}: manifest entry exists but the shard file is missing")
                orphans.append(self._entry_path(name))
                continue
            data = self.fs.cat_file(path)
            shard_ok = True
            if len(data) != entry.bytes:
                problems.append(f"{path}: size {len(data)} bytes, manifest says {entry.bytes}")
                shard_ok = False
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry.sha256:
                problems.append(f"{path}: sha256 mismatch (file {digest[:12]}…, manifest {entry.sha256[:12]}…)")
                shard_ok = False
            try:
                pf = pq.ParquetFile(pa.BufferReader(data))
                if pf.metadata.num_rows != entry.rows:
                    problems.append(f"{path}: {pf.metadata.num_rows} rows, manifest says {entry.rows}")
                    shard_ok = False
                if not pf.schema_arrow.equals(SAMPLE_SCHEMA, check_metadata=False):
                    problems.append(f"{path}: schema does not match SAMPLE_SCHEMA")
                    shard_ok = False
                ids = pf.read(columns=["sample_id"])["sample_id"].to_pylist()
            except Exception as exc:  # noqa: BLE001 — any parse failure is a corrupt shard, reported by file
                problems.append(f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})")
                continue
            for sid in ids:
                if sid in seen:
                    where = "twice in this shard" if seen[sid] == path else f"also in {seen[sid]}"
                    problems.append(f"{path}: duplicate sample_id {sid!r} ({where})")
                    shard_ok = False
                else:
                    seen[sid] = path
            if shard_ok:
                n_shards += 1
                n_rows += entry.rows
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
        return VerifyReport(root=self.path, ok=not problems, problems=problems, shards=n_shards,
                            rows=n_rows, orphans=orphans)

    def cleanup_orphans(self) -> list[str]:
        """Remove temporary files, uncommitted shard files and entries without a file.

        Call it on resume before starting writers: it would also remove the
        temporary file of a write in progress.
        """
        removed = []
        for path in self.verify().orphans:
            try:
                self.fs.rm(path)
                removed.append(path)
            except FileNotFoundError:
                pass
        return removed


def ensure_resumable(path: str, key: Mapping[str, Any]) -> None:
    """Refuse to resume (or reuse) a dataset whose committed shards were written with another `key`.

    Stages store the parameters that determine their rows under the dataset metadata's "key";
    resuming with different ones would mix, say, 64 px and 48 px images in one dataset.
    """
    store = ShardStore(path)
    if not store.entries():
        return
    existing = store.metadata().get("key")
    if existing != json.loads(json.dumps(dict(key))):
        raise ShardError(
            f"{path} already holds shards written with {json.dumps(existing, sort_keys=True)}; this run asks for "
            f"{json.dumps(dict(key), sort_keys=True)}. Use another output_dir, or delete {path} to rebuild it."
        )


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
