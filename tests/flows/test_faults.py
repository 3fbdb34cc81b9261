"""Faults around whole commands: a run killed with SIGKILL leaves no worker behind, and
`faceaug shards verify` says OK only for an intact dataset (and exits cleanly when it does).

Case 4 and 5 of the issue "Hostile input and faults". No Prefect: the commands run as the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from _stores import make_originals_store
from flows.cli import main
from pipeline.config import load_config
from pipeline.ingest import resolve_sources


# ----------------------------------------------------------------------------- 4: no orphan workers
def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # it ended while we listed
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _state(pid: int) -> str:
    """The process state letter (R, S, Z, ...); "gone" once it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _wait(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
@pytest.mark.timeout(120)
def test_sigkill_of_data_prepare_leaves_no_worker_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the benchmark lands in tmp_path/data/synthetic: render it now, so
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "warm"), "workers": 2})  # the only children
    resolve_sources(cfg, progress=lambda m: None)  # of the run below are its ingest pool's workers
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "data", "prepare", "--profile", "tiny", "--set", f"output_dir={tmp_path / 'run'}",
         "--set", "workers=2", "--set", "data.shard_rows=16"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list[int] = []
    try:
        assert _wait(lambda: run.poll() is not None or any(_state(k) not in ("Z", "gone") for k in _children(run.pid)), 60)
        assert run.poll() is None, "data prepare ended before it started its workers"
        # Stop the parent, so its workers run out of work and wait on their queue: the state in which,
        # without PR_SET_PDEATHSIG, they would outlive a kill -9 of the parent forever.
        os.kill(run.pid, signal.SIGSTOP)
        workers = [k for k in _children(run.pid) if _state(k) not in ("Z", "gone")]
        assert workers
        _wait(lambda: all(_state(k) in ("S", "Z", "gone") for k in workers), 20)
        os.kill(run.pid, signal.SIGKILL)  # the parent only, never the process group
        run.wait(10)
        survivors = lambda: [k for k in workers if _state(k) not in ("Z", "gone")]  # noqa: E731
        assert _wait(lambda: not survivors(), 5), f"workers {survivors()} outlived their parent"
    finally:
        for pid in [*workers, run.pid]:
            if _state(pid) not in ("Z", "gone"):
                os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- 5: shards verify
def _verify(*args: str):
    return CliRunner().invoke(main, ["shards", "verify", *args])


def test_verify_refuses_a_path_with_no_dataset(tmp_path):
    res = _verify(str(tmp_path / "nothing-here"))
    assert res.exit_code == 2 and "nothing-here: no such file or directory" in res.output and "OK" not in res.output
    (tmp_path / "empty").mkdir()
    res = _verify(str(tmp_path / "empty"))
    assert res.exit_code == 2 and "no shard dataset" in res.output


def test_verify_reports_a_lost_manifest_folder(tmp_path):
    make_originals_store(tmp_path / "shards" / "originals")
    make_originals_store(tmp_path / "shards" / "lfw").write_summary()
    assert _verify(str(tmp_path / "shards")).exit_code == 0
    for entry in (tmp_path / "shards" / "lfw" / "_manifest").iterdir():
        entry.unlink()
    (tmp_path / "shards" / "lfw" / "_manifest").rmdir()
    res = _verify(str(tmp_path / "shards"))  # the dataset is still found, and fails
    assert res.exit_code == 1, res.output
    assert "lfw/_manifest: missing" in res.output and "lfw/part-00000.parquet: orphan shard file" in res.output
    assert "originals: OK" in res.output


@pytest.mark.parametrize("damage, message", [
    (lambda s: {**s, "rows": s["rows"] + 1}, "does not match the committed shards' entries (fields that differ: rows)"),
    (lambda s: {**s, "shards": s["shards"][:1]}, "omits committed shards: ['part-00001']"),
    (lambda s: [s], "must be a JSON object"),
    (None, "not valid JSON"),
])
def test_verify_checks_manifest_json(tmp_path, damage, message):
    store = make_originals_store(tmp_path / "ds")
    summary = store.write_summary()
    path = tmp_path / "ds" / "manifest.json"
    path.write_text(json.dumps(damage(summary)) if damage else '{"rows": 4')
    res = _verify(str(tmp_path / "ds"), "--json")
    assert res.exit_code == 1
    [problem] = json.loads(res.output)[str(tmp_path / "ds")]["problems"]
    assert problem.startswith(f"{path}: ") and message in problem


def test_shard_reads_hand_arrow_no_python_owned_memory(tmp_path, monkeypatch):
    """The cause of `shards verify` aborting at exit (status 134, ~1 run in 100): an Arrow pool thread
    releasing a Python-owned buffer needs the GIL, and at interpreter shutdown that ends in std::terminate.
    Every shard read (pipeline.shards, pipeline.shard_verify, the loader) must give pyarrow a native file or an
    Arrow-owned buffer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import pipeline.shards as shards
    from pipeline.loader import ShardImageDataset

    store = make_originals_store(tmp_path / "ds")
    store.write_summary()
    given: list[object] = []
    real_reader = pa.BufferReader

    def reader(obj, *args):
        given.append(obj)
        return real_reader(obj, *args)

    def recorded(real):
        def call(source, *args, **kwargs):
            given.append(source)
            return real(source, *args, **kwargs)
        return call

    monkeypatch.setattr(shards.pa, "BufferReader", reader)
    for name in ("read_table", "read_schema", "ParquetFile"):
        monkeypatch.setattr(shards.pq, name, recorded(getattr(pq, name)))
    fresh = shards.ShardStore(str(tmp_path / "ds"))
    assert fresh.verify().ok
    fresh.read_table()
    fresh.metadata()
    assert len(list(ShardImageDataset(str(tmp_path / "ds"), split=None, shuffle=False))) == fresh.num_rows()
    with pytest.raises(shards.ShardError, match="already holds shards"):
        shards.ensure_resumable(str(tmp_path / "ds"), {"image_size": 1})
    assert given
    for obj in given:
        assert isinstance(obj, (pa.Buffer, pa.NativeFile)) and not isinstance(obj, pa.PythonFile), type(obj)
