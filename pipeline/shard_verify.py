"""Checking a shard dataset (`pipeline.shards`) in full: `faceaug shards verify` and `ShardStore.verify`.

Readers check each committed file's size and sha256 (through the checksum cache); `verify` hashes
every file again and also parses it: rows, row groups, counts per split and edit kind, the schema of
the version the shard declares (every version in `pipeline.samples.SCHEMAS` is valid, so a dataset
written before an upgrade still verifies), duplicate sample ids across shards, ``manifest.json``
against the entries, and what a killed writer left (`orphans`, removed by `ShardStore.cleanup_orphans`).
It never raises on bad data: every problem is a line naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.samples import SCHEMA_VERSION, SCHEMAS, ShardEntry, ShardError, dataset_metadata_of
from pipeline.shards import MANIFEST_DIR, MAX_SUMMARY_BYTES, SUMMARY_FILE, TMP_DIR, _arrow_buffer

if TYPE_CHECKING:
    from pipeline.shards import ShardStore


@dataclass
class VerifyReport:
    """Result of verify(): ok iff no problems (orphans count as problems)."""

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


def verify(store: ShardStore) -> VerifyReport:
    """Hash and parse every committed shard of `store` (bytes, rows, row groups, counts, schema, sample_id
    uniqueness), check manifest.json against the entries, and find orphans."""
    problems: list[str] = []
    if not store.fs.exists(store.root):
        return VerifyReport(root=store.path, ok=False, problems=[f"{store.path}: does not exist"], shards=0, rows=0)
    if not store.fs.isdir(store.root):
        return VerifyReport(root=store.path, ok=False, problems=[f"{store.path}: is not a directory"], shards=0, rows=0)
    files = store._ls()
    entries, entry_problems = store._read_entries()
    if not store.fs.isdir(store._p(MANIFEST_DIR)):
        problems.append(f"{store._p(MANIFEST_DIR)}: missing, so nothing here is committed"
                        + (f" ({sum(f.endswith('.parquet') for f in files)} shard files without entries)" if files else ""))
    problems.extend(entry_problems)
    orphan_paths, orphan_problems = orphans(store, files, entries)
    seen: dict[str, str] = {}
    n_shards = n_rows = 0
    dataset: dict | None = None
    for name, entry in sorted(entries.items()):
        if entry.file not in files:
            continue  # an orphan entry, reported by orphans()
        found, metadata = _check_shard(store, store.url_of(entry), entry, seen)
        problems.extend(found)
        if dataset is None:
            dataset = metadata
        if not found:
            n_shards += 1
            n_rows += entry.rows
    problems.extend(orphan_problems)
    committed = [e for _, e in sorted(entries.items()) if e.file in files]
    if not committed and not problems:
        problems.append(f"{store.path}: no committed shards (an empty or never-written dataset)")
    problems.extend(_check_summary(store, committed, dataset or {}))
    return VerifyReport(root=store.path, ok=not problems, problems=problems, shards=n_shards,
                        rows=n_rows, orphans=orphan_paths)


def _check_shard(store: ShardStore, path: str, entry: ShardEntry, seen: dict[str, str]) -> tuple[list[str], dict | None]:
    """Problems with one committed shard file, and its dataset metadata (None if unreadable)."""
    problems: list[str] = []
    data = store.fs.cat_file(path)
    if len(data) != entry.bytes:
        problems.append(f"{path}: size {len(data)} bytes, manifest says {entry.bytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        problems.append(f"{path}: sha256 mismatch (file {digest[:12]}…, manifest {entry.sha256[:12]}…)")
    schema = SCHEMAS.get(entry.schema_version)
    if schema is None:
        problems.append(f"{path}: schema version {entry.schema_version!r:.20} is not one this faceaug reads "
                        f"({', '.join(SCHEMAS)}); written by a newer faceaug?")
        return problems, None
    try:
        pf = pq.ParquetFile(pa.BufferReader(_arrow_buffer(data)))
        if pf.metadata.num_rows != entry.rows:
            problems.append(f"{path}: {pf.metadata.num_rows} rows, manifest says {entry.rows}")
        groups = tuple(pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups))
        if entry.row_groups and groups != entry.row_groups:
            problems.append(f"{path}: row groups {list(groups)}, manifest says {list(entry.row_groups)}")
        declared = (pf.schema_arrow.metadata or {}).get(b"faceaug.schema_version", b"").decode(errors="replace")
        if not pf.schema_arrow.equals(schema, check_metadata=False) or declared != entry.schema_version:
            problems.append(f"{path}: schema does not match schema version {entry.schema_version} "
                            f"(the file says {declared or 'none'}), which its manifest entry declares")
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


def _check_summary(store: ShardStore, committed: list[ShardEntry], dataset: dict) -> list[str]:
    """manifest.json (if written) must be what write_summary writes for these entries. Of "dataset" only the
    "key" is compared: the rest is the latest writer's metadata (a resumed run's config may differ in
    settings that do not change rows, such as workers), while each shard keeps its own writer's. Its
    "schema_version" is the writer's: any version this code reads, no older than the newest shard's (a
    dataset written before an upgrade keeps its summary until a later run rewrites it)."""
    path = store._p(SUMMARY_FILE)
    try:
        on_disk = json.loads(store._small_file(path, MAX_SUMMARY_BYTES))
    except FileNotFoundError:
        return []  # optional: written when a stage finishes; verify checks the entries themselves
    except ShardError as exc:
        return [f"{path}: {exc}"]
    except (ValueError, RecursionError) as exc:
        return [f"{path}: not valid JSON ({exc})"]
    if not isinstance(on_disk, dict):
        return [f"{path}: must be a JSON object (the summary of the committed shards), found {type(on_disk).__name__}"]
    counts: dict[str, int] = {}
    for e in committed:
        for k, n in e.counts.items():
            counts[k] = counts.get(k, 0) + n
    versions = list(SCHEMAS)  # oldest first
    newest = max((versions.index(e.schema_version) for e in committed if e.schema_version in versions), default=0)
    version = on_disk.get("schema_version")
    version = version if version in versions and versions.index(version) >= newest else SCHEMA_VERSION
    expected = {"schema_version": version, "dataset": dataset, "rows": sum(e.rows for e in committed),
                "counts": dict(sorted(counts.items())), "shards": [e.to_json() for e in committed]}
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


def orphans(store: ShardStore, files: dict[str, int], entries: dict[str, ShardEntry]) -> tuple[list[str], list[str]]:
    """Paths a killed writer left in `store` (from listings only, nothing is read) and a problem for each;
    `files` and `entries` are the store's listing and manifest entries."""
    paths, problems = [], []
    for name, entry in sorted(entries.items()):
        if entry.file not in files:
            problems.append(f"{store.url_of(entry)}: manifest entry exists but the shard file is missing")
            paths.append(store._entry_path(name))
    committed_files = {e.file for e in entries.values()}
    for fname in sorted(files):
        if fname.endswith(".parquet") and fname not in committed_files:
            path = store._p(fname)
            problems.append(f"{path}: orphan shard file with no manifest entry (never committed)")
            paths.append(path)
    for fname in sorted(store._ls(TMP_DIR)):
        path = store._p(TMP_DIR, fname)
        problems.append(f"{path}: leftover temporary file from an interrupted write")
        paths.append(path)
    return paths, problems


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
