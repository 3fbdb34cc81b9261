"""The `augment-and-verify` Prefect flow on the tiny profile, end to end, under a temporary Prefect server:
reuse, bad parameters, SIGKILL in the middle of augmentation and of verifier training and resume, and
the Dask task runner on a local two-worker cluster.

Every flow run is a child Python process in its own process group: Prefect's test harness leaves
server threads and global state behind (a pytest process that later forks DataLoader workers must
not inherit them), and a kill test SIGKILLs the whole group, harness server included, as `kill -9`
would a real run.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pipeline.shards import ShardStore

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from prefect.testing.utilities import prefect_test_harness
    from flows.augment_and_verify import augment_and_verify

    overrides = json.loads(sys.argv[1])
    result = {}
    with prefect_test_harness(server_startup_timeout=120):
        result["report"] = augment_and_verify(profile="tiny", overrides=overrides)
        from prefect.client.orchestration import get_client
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts()
            result["artifact_types"] = sorted({a.type for a in artifacts})
            result["artifact_keys"] = sorted({a.key for a in artifacts if a.key})
            result["progress"] = sorted({a.description or "" for a in artifacts if a.type == "progress"})
        if "--again" in sys.argv:
            run = overrides["output_dir"]
            path = os.path.join(run, "verifiers", "baseline", "seed-0", "verifier.pt")
            mtime = os.stat(path).st_mtime
            result["again"] = augment_and_verify(profile="tiny", overrides=overrides)
            result["reused"] = os.stat(path).st_mtime == mtime
            try:
                augment_and_verify(profile="tiny", overrides={"data.imagesize": 3, "output_dir": run + "-bad"})
                result["bad"] = "accepted"
            except ValueError as exc:
                result["bad"] = str(exc)
            result["bad_dir_exists"] = os.path.exists(run + "-bad")
    print("RESULT " + json.dumps(result))
''')

# checkpoint_every=2: a kill at a verifier's 3rd step loses one uncheckpointed step to redo. The edited arm beside its
# no-edit control, as every profile runs it.
BASE = {"verifier.threads": 1, "verifier.checkpoint_every": 2, "verifier.arms": ["baseline", "aug-eyeglasses", "aug-eyeglasses@identity"]}


def _flow(cwd, run, *extra, kill_at=None, **overrides):
    env = dict(os.environ)
    env.pop("FACEAUG_KILL_AT", None)
    # nothing Prefect could read back (a result record names its own serializer, pickle included) may be
    # written, even when the user's Prefect settings persist results by default
    env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] = "true"
    env["PREFECT_LOCAL_STORAGE_PATH"] = str(cwd / "prefect-results")
    if kill_at:
        env["FACEAUG_KILL_AT"] = kill_at
        env["FACEAUG_KILL_COUNTER"] = str(cwd / f"kill-counter-{kill_at}")
    params = json.dumps({**BASE, "output_dir": str(run), **overrides})
    return subprocess.run([sys.executable, "-c", SCRIPT, params, *extra], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, start_new_session=True)


def _result(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def _metrics(run):
    """Every number the evaluation produced, per arm (identical runs give identical numbers)."""
    results = json.loads((run / "results.json").read_text())
    # everything but `training` (paths and wall times); training losses are compared separately
    numbers = {arm: {k: v for k, v in values.items() if k != "training"} for arm, values in results["arms"].items()}
    losses = {arm: [(t["final_loss"], t["loss_curve"]) for t in values["training"]] for arm, values in results["arms"].items()}
    return json.dumps([numbers, losses, results["differences"]], sort_keys=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="module")
def reference(workdir):
    """One uninterrupted run (plus a re-run and a bad-parameter run under the same server)."""
    proc = _flow(workdir, workdir / "reference", "--again")
    result = _result(proc)
    result["output"] = proc.stdout + proc.stderr
    return workdir / "reference", result


def test_flow_end_to_end_reuse_and_bad_parameters(reference):
    run, result = reference
    assert result["report"].endswith("report.html")
    data = json.loads((run / "report.json").read_text())
    html = (run / "report.html").read_text()
    assert set(data["results"]["arms"]) == {"baseline", "aug-eyeglasses", "aug-eyeglasses@identity"}
    import html as htmllib

    for table in data["tables"]:
        for row in table["rows"]:
            assert all(htmllib.escape(str(v)) in html for v in row.values())  # the HTML's numbers are report.json's
    assert data["headline"] and data["headline"][0]["control"] == "aug-eyeglasses@identity"
    # the run page carries the headline table, the markdown summary, the report link and stage progress
    assert set(result["artifact_types"]) >= {"table", "markdown", "progress"}
    assert set(result["artifact_keys"]) >= {"verification-headline", "results-summary", "report"}  # report: the link
    # progress where the user looks: each stage's start and end in the flow's log, the trainings' progress lines
    # relayed from their worker processes as they run, and a live progress artifact per training
    assert "== stage 1/8: prepare data" in result["output"] and "== stage 8/8: report finished in" in result["output"]
    assert "sagan/eyeglasses: it 4/4" in result["output"] and "baseline/seed-0: verifier[seed-0]: step" in result["output"]
    assert any(d.startswith("sagan/eyeglasses 4/4") for d in result["progress"])
    assert any(d.startswith("baseline/seed-0") for d in result["progress"])
    assert (run / "progress" / "train-verifiers" / "baseline-0.log").exists()
    # re-running the same config reuses every finished stage (files, not only Prefect's database)
    assert result["reused"] and result["again"] == result["report"]
    # a bad override fails with the key named, before any task (nothing is written)
    assert "data.imagesize" in result["bad"] and not result["bad_dir_exists"]
    # no task or flow result was persisted (nothing for Prefect to read back); the one record Prefect writes
    # whatever the settings, the exception of the failed run above, is JSON, not a pickle
    stored = [p for p in (run.parent / "prefect-results").rglob("*") if p.is_file()]
    assert len(stored) <= 1, stored
    for record in stored:
        text = record.read_text()
        assert '"__exc_type__": "builtins.ValueError"' in text and "data.imagesize" in text, text[:500]


def test_sigkill_mid_augmentation_and_mid_training_then_resume(workdir, reference):
    ref_run, _ = reference
    run = workdir / "killed"
    # 1. Killed while the second augmentation shard is encoded but not yet committed (one worker,
    #    so the first shard is committed by then).
    first = _flow(workdir, run, kill_at="augment-shard-encoded:2", workers=1)
    assert first.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), first.stdout[-2000:] + first.stderr[-2000:]
    aug = ShardStore(str(run / "shards" / "aug-eyeglasses"))
    assert 0 < len(aug.entries()) < len(ShardStore(str(ref_run / "shards" / "aug-eyeglasses")).entries())
    assert not (run / "verifiers").exists()
    # 2. Re-run; killed after the third optimiser step of the first verifier (checkpointed at step 2).
    second = _flow(workdir, run, kill_at="verifier-step:3", workers=1)
    assert second.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), second.stdout[-2000:] + second.stderr[-2000:]
    checkpoints = list((run / "verifiers").rglob("checkpoint.pt"))
    assert checkpoints and not list((run / "verifiers").rglob("verifier.pt"))
    # 3. Re-run to the end.
    _result(_flow(workdir, run))

    for name in ("originals", "lfw", "aug-eyeglasses"):
        store, ref = ShardStore(str(run / "shards" / name)), ShardStore(str(ref_run / "shards" / name))
        report = store.verify()
        assert report.ok, report.format()
        ids = store.read_table(columns=["sample_id"]).column("sample_id").to_pylist()
        assert len(ids) == len(set(ids))  # no duplicates
        assert sorted(ids) == sorted(ref.read_table(columns=["sample_id"]).column("sample_id").to_pylist())  # none missing
    originals = ShardStore(str(run / "shards" / "originals")).read_table(columns=["split"], filter_split="train").num_rows
    assert ShardStore(str(run / "shards" / "aug-eyeglasses")).num_rows() == 3 * originals
    assert _metrics(run) == _metrics(ref_run)  # the same numbers as the uninterrupted run


def test_dask_task_runner_on_a_local_two_worker_cluster(workdir, reference):
    ref_run, _ = reference
    run = workdir / "dask"
    result = _result(_flow(workdir, run, **{"engine.task_runner": "dask", "engine.dask_workers": 2}))
    assert result["report"].endswith("report.html")
    assert ShardStore(str(run / "shards" / "aug-eyeglasses")).verify().ok
    assert _metrics(run) == _metrics(ref_run)  # where the work ran does not change what it computed


def test_failures_name_the_stage_and_input_and_only_transient_ones_retry():
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace

    from flows.augment_and_verify import StageFailed, _stage, _transient

    with pytest.raises(StageFailed, match=r"stage 'augment' failed for attribute 'smiling', shard 3: OSError: disk hiccup"):
        with _stage("augment", "attribute 'smiling', shard 3"):
            raise OSError("disk hiccup")

    def failed_with(exc):
        try:
            with _stage("train verifier", "arm 'baseline', seed 0"):
                raise exc
        except StageFailed as wrapped:
            return SimpleNamespace(data=wrapped)

    assert _transient(None, None, failed_with(OSError("connection reset")))
    assert _transient(None, None, failed_with(BrokenProcessPool("worker died")))
    assert not _transient(None, None, failed_with(FileNotFoundError("no shards")))
    assert not _transient(None, None, failed_with(ValueError("bad config")))
