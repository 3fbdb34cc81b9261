"""Shard schema, atomic commit protocol, verify and cleanup."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.images import decode_rgb
from pipeline.samples import IMAGE_TYPE
from pipeline.shards import (
    SAMPLE_SCHEMA, SCHEMA_VERSION, ShardError, ShardStore, make_row, rows_to_table, validate_row,
)


def _image(rng: np.random.Generator, size: int = 24) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _rows(start: int, n: int, seed: int = 0, kinds=("original", "added", "removed")) -> tuple[list[dict], list]:
    """n source images x len(kinds) rows, and the uint8 arrays in row order."""
    rng = np.random.default_rng(seed + start)
    rows, arrays = [], []
    for i in range(start, start + n):
        for kind in kinds:
            img = _image(rng)
            attrs = rng.integers(0, 2, 40)
            rows.append(make_row(
                image=img, identity=100 + i % 3, source_image_id=f"{i:06d}.jpg", split="train" if i % 4 else "test",
                edit_kind=kind, attribute_edited=None if kind == "original" else "eyeglasses", attributes=attrs,
                editor=None if kind == "original" else "sagan", editor_version="0.1",
                editor_checkpoint=None if kind == "original" else "ab" * 32,
            ))
            arrays.append(img)
    return rows, arrays


def test_round_trip_is_byte_exact(tmp_path):
    store = ShardStore(tmp_path / "ds", metadata={"editor": "sagan", "config": {"size": 24}})
    rows, arrays = _rows(0, 5)
    entry = store.write_shard("part-00000", rows, shard_metadata={"inputs": [0, 5]})
    assert entry.rows == 15 and entry.metadata == {"inputs": [0, 5]}
    back = store.read_table().to_pylist()
    assert len(back) == len(rows)
    for want, got, arr in zip(rows, back, arrays):
        assert got == want  # every field, image bytes included
        assert got["image"]["path"] is None
        assert np.array_equal(decode_rgb(got["image"]["bytes"], got["sample_id"]), arr)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(got["image"]["bytes"]))), arr)
    assert store.read_table(filter_split="test", columns=["sample_id"]).column_names == ["sample_id"]
    assert store.read_table(filter_split="test").num_rows == 6  # sources 0 and 4


def test_schema_metadata_round_trip(tmp_path):
    meta = {"editor": "sagan", "run": {"seed": 3, "attributes": ["eyeglasses"]}}
    store = ShardStore(tmp_path, metadata=meta)
    store.write_shard("a", _rows(0, 2)[0])
    with open(store.shard_path("a"), "rb") as f:
        schema = pq.read_schema(f)
    assert schema.metadata[b"faceaug.schema_version"].decode() == SCHEMA_VERSION
    assert json.loads(schema.metadata[b"faceaug.dataset"]) == meta
    assert schema.equals(SAMPLE_SCHEMA, check_metadata=False)
    assert ShardStore(tmp_path).metadata() == meta  # a reader without metadata reads it back
    summary = store.write_summary()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == summary and on_disk["rows"] == 6 and on_disk["dataset"] == meta
    assert [s["name"] for s in on_disk["shards"]] == ["a"]


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("edit_kind", "flipped", "edit_kind"),
        ("split", "dev", "split"),
        ("attributes", [0] * 39, "attributes"),
        ("attributes", [2] + [0] * 39, "attributes"),
        ("height", 99, "image"),  # PNG header disagrees
        ("attribute_edited", "smiling", "attribute_edited"),  # an original names no attribute
        ("identity", "7", "identity"),
    ],
)
def test_row_validation_names_row_and_field(field, value, message):
    rows, _ = _rows(0, 2, kinds=("original",))
    rows[1][field] = value
    with pytest.raises(ShardError, match=rf"row 1 \(sample_id='000001.jpg/original'\): field '{message}'"):
        rows_to_table(rows)


def test_missing_and_duplicate_fields_rejected():
    rows, _ = _rows(0, 2, kinds=("original",))
    del rows[0]["identity"]
    with pytest.raises(ShardError, match="field 'identity': missing"):
        validate_row(rows[0])
    rows, _ = _rows(0, 2, kinds=("original",))
    rows[1]["sample_id"] = rows[0]["sample_id"]
    with pytest.raises(ShardError, match="duplicate"):
        rows_to_table(rows)


def test_rows_take_image_bytes_and_tables_need_them(tmp_path):
    rows, _ = _rows(0, 2, kinds=("original",))
    plain = {**rows[0], "image": rows[0]["image"]["bytes"]}  # what ingest hands the store: the encoded bytes
    assert validate_row(plain) == rows[0]
    with pytest.raises(ShardError, match=r"field 'image': has keys \['bytes', 'size'\]"):
        validate_row({**rows[0], "image": {"bytes": b"x", "size": 1}})
    table = rows_to_table(rows)
    empty = table.set_column(1, "image", pa.array([rows[0]["image"], {"bytes": b"", "path": None}], IMAGE_TYPE))
    with pytest.raises(ShardError, match=r"row 1 \(sample_id='000001.jpg/original'\): field 'image': must be non-empty"):
        ShardStore(tmp_path).write_shard("p0", empty)


def test_overwrite_refused_unless_asked(tmp_path):
    store = ShardStore(tmp_path)
    store.write_shard("p0", _rows(0, 2)[0])
    with pytest.raises(FileExistsError, match="p0"):
        store.write_shard("p0", _rows(5, 1)[0])
    store.write_shard("p0", _rows(5, 1)[0], overwrite=True)
    assert store.num_rows() == 3
    assert store.verify().ok


def test_crash_leftovers_not_read_reported_and_cleaned(tmp_path):
    store = ShardStore(tmp_path)
    store.write_shard("p0", _rows(0, 2)[0])
    # Crash during step 1: a temporary file left behind.
    (tmp_path / "_tmp" / f"p1.{uuid.uuid4().hex}.parquet").write_bytes(b"PAR1 half written")
    # Crash between step 2 and 3: a complete shard file without its entry.
    other = ShardStore(tmp_path / "elsewhere")
    other.write_shard("p2", _rows(10, 2)[0])
    (tmp_path / "p2.parquet").write_bytes((tmp_path / "elsewhere" / "p2.parquet").read_bytes())

    assert [e.name for e in store.entries()] == ["p0"]
    assert not store.has("p2")
    assert store.num_rows() == 6 and store.read_table().num_rows == 6
    report = store.verify()
    assert not report.ok and report.shards == 1 and report.rows == 6
    text = report.format()
    assert "p2.parquet: orphan shard file" in text
    assert "_tmp/p1." in text and "leftover temporary file" in text

    removed = store.cleanup_orphans()
    assert len(removed) == 2
    assert not (tmp_path / "p2.parquet").exists()
    assert store.verify().ok
    # Resume: the interrupted shard can now be written normally.
    store.write_shard("p2", _rows(10, 2)[0])
    assert store.verify().ok and store.num_rows() == 12


def test_entry_without_file_reported(tmp_path):
    store = ShardStore(tmp_path)
    store.write_shard("p0", _rows(0, 1)[0])
    store.write_shard("p1", _rows(1, 1)[0])
    (tmp_path / "p1.parquet").unlink()
    assert [e.name for e in store.entries()] == ["p0"] and not store.has("p1")
    report = store.verify()
    assert any("p1.parquet: manifest entry exists but the shard file is missing" in p for p in report.problems)
    store.cleanup_orphans()
    assert store.verify().ok


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_shard_reported_by_file(tmp_path, damage):
    store = ShardStore(tmp_path)
    store.write_shard("good", _rows(0, 2)[0])
    store.write_shard("bad", _rows(2, 2)[0])
    path = tmp_path / "bad.parquet"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        mid = len(data) // 2
        data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    else:
        data = data[: len(data) - 100]
    path.write_bytes(bytes(data))
    report = store.verify()
    assert not report.ok and report.shards == 1
    bad = [p for p in report.problems if "bad.parquet" in p]
    assert any("sha256 mismatch" in p for p in bad)
    if damage == "truncate":
        assert any("size" in p for p in bad) and any("cannot read as Parquet" in p for p in bad)
    assert not any("good.parquet" in p for p in report.problems)


def test_duplicate_sample_id_across_shards(tmp_path):
    store = ShardStore(tmp_path)
    store.write_shard("a", _rows(0, 2)[0])
    store.write_shard("b", _rows(1, 2)[0])  # source 000001.jpg is in both
    report = store.verify()
    assert not report.ok
    assert any("b.parquet: duplicate sample_id '000001.jpg/original'" in p and "a.parquet" in p
               for p in report.problems)


def test_invalid_shard_names(tmp_path):
    store = ShardStore(tmp_path)
    for name in ("../x", "a/b", "_tmp", "", "x.parquet"):
        with pytest.raises(ShardError):
            store.write_shard(name, _rows(0, 1)[0])


def test_memory_filesystem_store():
    root = f"memory://faceaug-test-{uuid.uuid4().hex}/ds"
    store = ShardStore(root, metadata={"k": "v"})
    rows, _ = _rows(0, 3)
    store.write_shard("p0", rows[:5])
    store.write_shard("p1", rows[5:])
    again = ShardStore(root)
    assert again.has("p0") and again.num_rows() == 9
    assert again.read_table().to_pylist() == rows
    assert again.metadata() == {"k": "v"}
    assert again.verify().ok
    again.fs.pipe_file(again.root + "/_tmp/p2.x.parquet", b"junk")
    assert not again.verify().ok
    again.cleanup_orphans()
    assert again.verify().ok
    assert again.write_summary()["rows"] == 9
