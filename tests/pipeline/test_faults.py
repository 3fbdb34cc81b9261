"""Faults injected into committed data and into worker processes: detected, then repaired or refused.

Beside the kill-and-resume test of the whole flow (tests/flows/test_flow.py), without Prefect: a
committed shard corrupted in place (same size, one byte flipped) and a deleted manifest entry are
each found on the next `prepare_data`, the shard is rewritten, and the rows end exactly as an
untouched run's; readers refuse a corrupted shard by name; the checksum cache hashes a file once;
a worker process that dies is reported by the job that killed it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _stores import make_originals_store
from pipeline.ingest import prepare_data
from pipeline.layout import RunLayout
from pipeline.shards import CorruptShardWarning, ShardError, ShardStore, image_bytes
from pipeline.workers import CrashIsolatingPool

QUIET = lambda *_: None  # noqa: E731


def rows_of(path) -> dict[str, bytes]:
    table = ShardStore(str(path)).read_table(columns=["sample_id", "image"])
    return dict(zip(table.column("sample_id").to_pylist(), image_bytes(table.column("image")).to_pylist()))


def flip_inside_an_image(store_path, name: str) -> None:
    """Flip one byte inside the first image of shard `name`: same size, a valid Parquet file, another image."""
    path = f"{store_path}/{name}.parquet"
    image = image_bytes(pq.read_table(pa.OSFile(path), columns=["image"]).column("image"))[0].as_py()
    with open(path, "rb") as f:
        data = bytearray(f.read())
    at = data.find(image[64:128]) + 8  # uncompressed, so the PNG bytes lie in the file as they are
    assert at > 8
    data[at] ^= 0x01
    with open(path, "r+b") as f:  # in place, as bit rot or a stray write would
        f.write(data)


@pytest.mark.timeout(180)
def test_corrupted_shard_and_lost_entry_are_repaired_to_exact_rows(tiny_config):
    layout = RunLayout(tiny_config)
    prepare_data(tiny_config, progress=QUIET)
    untouched = {"originals": rows_of(layout.originals), "lfw": rows_of(layout.lfw)}

    flip_inside_an_image(layout.originals, "part-00001")
    with pytest.raises(ShardError, match="part-00001.parquet: failed its checksum"):
        ShardStore(str(layout.originals)).read_table()  # readers refuse it, naming the file
    os.remove(f"{layout.lfw}/_manifest/part-00000.json")  # the shard file stays: an uncommitted orphan now

    said: list[str] = []
    summary = prepare_data(tiny_config, progress=said.append)
    assert any("part-00001.parquet: failed its checksum" in m and "rewritten" in m for m in said), said
    assert summary["originals"]["shards_reused"] == summary["originals"]["shards"] - 1
    assert summary["lfw"]["shards_reused"] == summary["lfw"]["shards"] - 1
    for name, path in (("originals", layout.originals), ("lfw", layout.lfw)):
        store = ShardStore(str(path))
        assert store.verify().ok, store.verify().format()
        assert rows_of(path) == untouched[name]  # same sample ids, same image bytes


def test_readers_and_resume_check_the_checksum_not_the_size(tmp_path):
    store = make_originals_store(tmp_path / "ds")
    before = store.read_table().num_rows
    flip_inside_an_image(tmp_path / "ds", "part-00000")
    entry = json.loads((tmp_path / "ds" / "_manifest" / "part-00000.json").read_text())
    assert os.path.getsize(tmp_path / "ds" / "part-00000.parquet") == entry["bytes"]  # only the checksum tells
    fresh = ShardStore(str(tmp_path / "ds"))
    for read in (fresh.entries, fresh.read_table, fresh.num_rows, lambda: list(fresh.iter_tables())):
        with pytest.raises(ShardError, match=r"ds/part-00000.parquet: failed its checksum"):
            read()
    with pytest.warns(CorruptShardWarning, match="part-00000.parquet: failed its checksum.*rewritten"):
        assert not fresh.has("part-00000")
    assert fresh.has("part-00001")
    said: list[str] = []
    assert not fresh.has("part-00000", progress=said.append) and "rewritten" in said[0]
    report = fresh.verify()
    assert not report.ok and any("part-00000.parquet: sha256 mismatch" in p for p in report.problems)
    # A writer that resumes rewrites it (has() is false), and then it reads again.
    rows = make_originals_store(tmp_path / "again").read_table().to_pylist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptShardWarning)
        fresh.write_shard("part-00000", rows[: len(rows) // 2])
    assert fresh.read_table().num_rows == before and fresh.verify().ok


def test_the_pytorch_loader_refuses_a_corrupted_shard(tmp_path):
    from pipeline.loader import ShardImageDataset

    make_originals_store(tmp_path / "ds")
    flip_inside_an_image(tmp_path / "ds", "part-00001")
    with pytest.raises(ShardError, match="part-00001.parquet"):
        ShardImageDataset(str(tmp_path / "ds"), split=None)


def test_an_unreadable_manifest_entry_is_refused_not_skipped(tmp_path):
    store = make_originals_store(tmp_path / "ds")
    (tmp_path / "ds" / "_manifest" / "part-00001.json").write_text('{"name": "part-00001", "rows": "many"')
    with pytest.raises(ShardError, match=r"_manifest/part-00001.json: unreadable manifest entry"):
        store.read_table()  # rather than silently returning half the rows
    assert not store.has("part-00001") and store.has("part-00000")


def test_checksum_cache_hashes_each_file_once_and_sees_any_write(tmp_path, monkeypatch):
    import pipeline.shards as shards

    store = make_originals_store(tmp_path / "ds")
    old = time.time_ns() - 60 * 10**9  # files written a minute ago: outside the racy window
    for name in ("part-00000", "part-00001"):
        os.utime(store.shard_path(name), ns=(old, old))
    hashed: list[int] = []
    real = shards.hashlib.sha256
    monkeypatch.setattr(shards.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    ShardStore(str(tmp_path / "ds")).entries()
    assert len(hashed) == 2  # changed since written (utime): hashed once each, then cached
    ShardStore(str(tmp_path / "ds")).entries()
    ShardStore(str(tmp_path / "ds")).read_table()
    assert store.has("part-00000") and len(hashed) == 2  # a re-run does not hash again
    flip_inside_an_image(tmp_path / "ds", "part-00000")
    os.utime(store.shard_path("part-00000"), ns=(old, old))  # even with the old mtime put back
    with pytest.raises(ShardError, match="part-00000.parquet: failed its checksum"):
        ShardStore(str(tmp_path / "ds")).entries()


def _square_or_die(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # a decoder crash, as far as the pool can tell
    return x * x


@pytest.mark.timeout(60)
def test_a_worker_that_dies_is_reported_by_its_job_and_the_rest_is_kept():
    with CrashIsolatingPool(2) as pool:
        out = pool.map(_square_or_die, [1, 2, 3, 4], lambda job, why: f"job {job}: {why}")
        again = pool.map(_square_or_die, [5, 6], lambda job, why: None)  # a fresh pool after the broken one
    assert out[:2] == [1, 4] and out[3] == 16
    assert out[2].startswith("job 3: its worker process died") and again == [25, 36]


@pytest.mark.timeout(30)
def test_fifos_planted_in_a_store_block_nothing(tmp_path):
    store = make_originals_store(tmp_path / "ds")
    store.write_summary()
    for path in ("_manifest/part-00000.json", "manifest.json", "_verified/part-00001.json"):
        os.remove(tmp_path / "ds" / path)
        os.mkfifo(tmp_path / "ds" / path)  # opening one to read would wait for a writer forever
    fresh = ShardStore(str(tmp_path / "ds"))
    assert not fresh.has("part-00000") and fresh.has("part-00001")  # rehashed: its cache file is unusable
    report = fresh.verify()
    assert any("manifest.json: is not a regular file" in p for p in report.problems)
    assert any("part-00000.parquet: orphan shard file" in p for p in report.problems)
