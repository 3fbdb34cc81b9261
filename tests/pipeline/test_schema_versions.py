"""Shards written at schema version 1 (the image as plain bytes) are still read, alone and mixed with new ones.

A dataset may be resumed across the upgrade: its old shards are kept (they verify) and new ones are written
at the current version, so every reader must take both in one dataset.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from editing.originals import load_originals
from pipeline.images import decode_rgb
from pipeline.loader import ShardImageDataset
from pipeline.shards import SCHEMA_VERSION, SCHEMAS, ShardStore, image_bytes, make_row

META = {"dataset": "originals", "key": {"image_size": 16}}


def _rows(start: int, n: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    rng = np.random.default_rng(start)
    rows, pixels = [], {}
    for i in range(start, start + n):
        img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        rows.append(make_row(image=img, identity=i % 4, source_image_id=f"{i:06d}.jpg", split="test" if i % 5 == 0 else "train",
                             edit_kind="original", attributes=rng.integers(0, 2, 40), regions=np.full((16, 16), i % 8, np.uint8)))
        pixels[rows[-1]["sample_id"]] = img
    return rows, pixels


def write_v1_shard(root, name: str, rows: list[dict], metadata: dict) -> None:
    """Commit a shard exactly as faceaug wrote it at schema version 1: the image column plain bytes, the entry
    and the file's metadata saying "1"."""
    schema = SCHEMAS["1"].with_metadata({"faceaug.schema_version": "1",
                                         "faceaug.dataset": json.dumps(metadata, sort_keys=True)})
    table = pa.Table.from_pylist([{**r, "image": r["image"]["bytes"]} for r in rows], schema=schema)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, row_group_size=4, compression="none")
    data = buf.getvalue().to_pybytes()
    (root / "_manifest").mkdir(parents=True, exist_ok=True)
    (root / f"{name}.parquet").write_bytes(data)
    counts = Counter(f"{r['split']}/{r['edit_kind']}" for r in rows)
    groups = pq.ParquetFile(pa.BufferReader(data)).metadata
    entry = {"name": name, "file": f"{name}.parquet", "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(),
             "bytes": len(data), "schema_version": "1", "created": "2026-01-01T00:00:00+00:00",
             "row_groups": [groups.row_group(i).num_rows for i in range(groups.num_row_groups)],
             "counts": dict(sorted(counts.items())), "metadata": {}}
    (root / "_manifest" / f"{name}.json").write_text(json.dumps(entry, indent=1, sort_keys=True))


@pytest.fixture
def datasets(tmp_path):
    """An old dataset (two v1 shards and the summary v1 wrote) and a resumed one (v1, then v2 shards)."""
    rows, pixels = _rows(0, 20)
    old = tmp_path / "old"
    write_v1_shard(old, "part-00000", rows[:10], META)
    write_v1_shard(old, "part-00001", rows[10:], META)
    summary = ShardStore(old).manifest()
    (old / "manifest.json").write_text(json.dumps({**summary, "schema_version": "1"}, indent=1, sort_keys=True))
    mixed = tmp_path / "mixed"
    write_v1_shard(mixed, "part-00000", rows[:10], META)
    ShardStore(mixed, metadata=META).write_shard("part-00001", rows[10:], row_group_size=4)
    return {"old": old, "mixed": mixed}, rows, pixels


def _image_rows(table: pa.Table) -> dict[str, bytes]:
    return dict(zip(table["sample_id"].to_pylist(), image_bytes(table["image"]).to_pylist()))


@pytest.mark.parametrize("which", ["old", "mixed"])
def test_store_reads_every_version_in_the_current_schema(datasets, which):
    paths, rows, _ = datasets
    store = ShardStore(paths[which])
    table = store.read_table()
    assert table.schema.equals(SCHEMAS[SCHEMA_VERSION], check_metadata=False)
    assert table.to_pylist() == rows  # every field, the image as {"bytes", "path"}, in shard order
    tests = store.read_table(columns=["sample_id", "image"], filter_split="test")
    assert _image_rows(tests) == {r["sample_id"]: r["image"]["bytes"] for r in rows if r["split"] == "test"}
    assert all(t.schema.field("image").type == SCHEMAS[SCHEMA_VERSION].field("image").type for _, t in store.iter_tables())


@pytest.mark.parametrize("which", ["old", "mixed"])
def test_loader_and_originals_read_every_version(datasets, which):
    paths, rows, pixels = datasets
    items = list(ShardImageDataset(paths[which], split=None, shuffle=False))
    assert [i["sample_id"] for i in items] == [r["sample_id"] for r in rows]
    for item in items:
        back = ((item["image"].permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
        assert np.array_equal(back, pixels[item["sample_id"]])
    train = load_originals([str(paths[which])], split="train")
    assert train.sample_ids == [r["sample_id"] for r in rows if r["split"] == "train"]
    for k, sid in enumerate(train.sample_ids):
        assert np.array_equal(train.images[k].permute(1, 2, 0).numpy(), pixels[sid])
    assert train.regions is not None and int(train.regions[0, 0, 0]) == int(train.sample_ids[0][:6]) % 8


def test_an_old_dataset_verifies_and_a_resumed_one_too(datasets):
    paths, rows, _ = datasets
    report = ShardStore(paths["old"]).verify()
    assert report.ok and report.rows == len(rows), report.format()
    mixed = ShardStore(paths["mixed"])
    assert [e.schema_version for e in mixed.entries()] == ["1", SCHEMA_VERSION]
    assert mixed.has("part-00000")  # an old shard that verifies is reused on resume, not rewritten
    assert mixed.verify().ok
    assert mixed.write_summary()["schema_version"] == SCHEMA_VERSION and mixed.verify().ok
    summary = json.loads((paths["mixed"] / "manifest.json").read_text())  # older than its newest shard
    (paths["mixed"] / "manifest.json").write_text(json.dumps({**summary, "schema_version": "1"}))
    assert "fields that differ: schema_version" in "\n".join(mixed.verify().problems)


def test_a_shard_whose_schema_is_not_its_declared_version_fails_verify(tmp_path):
    rows, _ = _rows(0, 4)
    write_v1_shard(tmp_path, "part-00000", rows, META)
    entry = tmp_path / "_manifest" / "part-00000.json"
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "schema_version": SCHEMA_VERSION}))
    report = ShardStore(tmp_path).verify()
    assert not report.ok and f"schema does not match schema version {SCHEMA_VERSION} (the file says 1)" in report.problems[0]
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "schema_version": "99"}))
    assert "schema version '99' is not one this faceaug reads" in ShardStore(tmp_path).verify().problems[0]


def test_an_old_table_is_written_at_the_current_version(datasets, tmp_path):
    paths, rows, _ = datasets
    old = pq.read_table(pa.OSFile(str(paths["old"] / "part-00000.parquet")))  # read without faceaug: plain bytes
    assert old.schema.field("image").type == pa.binary()
    store = ShardStore(tmp_path / "rewritten", metadata=META)
    assert store.write_shard("part-00000", old).schema_version == SCHEMA_VERSION
    assert store.read_table().to_pylist() == rows[:10] and store.verify().ok
    assert decode_rgb(image_bytes(store.read_table()["image"])[0].as_py(), "first").shape == (16, 16, 3)
