"""One verifier on two processes (torchrun, gloo on CPU) trains what one process trains, and resumes exactly."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from pipeline.config import load_config

QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from pipeline.ingest import prepare_data

    root = tmp_path_factory.mktemp("ddp")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config("tiny", {"output_dir": str(root / "single"), "workers": 1, "verifier.threads": 1})
        prepare_data(cfg, progress=QUIET)
        from recognition.experiment import train_arm

        train_arm(cfg, "baseline", 0, device="cpu", progress=QUIET)  # the single-process reference, global batch 16
        yield root
    finally:
        os.chdir(cwd)


def _torchrun(root, out, *extra_env, checkpoint_every=2):
    env = dict(os.environ)
    env.pop("FACEAUG_KILL_AT", None)
    for item in extra_env:
        key, value = item.split("=", 1)
        env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(29500 + os.getpid() % 1000),
         "-m", "recognition.train_ddp", "--profile", "tiny", "--arm", "baseline", "--seed", "0",
         "--set", f"output_dir={out}", "--set", f"data.shard_root={root / 'single' / 'shards'}", "--set", "verifier.threads=1",
         "--set", f"verifier.checkpoint_every={checkpoint_every}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)


def _record(run):
    d = run / "verifiers" / "baseline" / "seed-0"
    return json.loads((d / "training.json").read_text()), torch.load(d / "verifier.pt", weights_only=True)["model"]


def _relative_difference(a, b):
    keys = [k for k in a if a[k].is_floating_point()]
    num = sum(((a[k].float() - b[k].float()) ** 2).sum().item() for k in keys)
    return math.sqrt(num / sum((a[k].float() ** 2).sum().item() for k in keys))


def test_two_processes_train_the_single_process_weights(shards):
    proc = _torchrun(shards, shards / "ddp")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (single, w1), (ddp, w2) = _record(shards / "single"), _record(shards / "ddp")
    assert ddp["samples_seen"] == single["samples_seen"] and ddp["steps"] == single["steps"]
    # The same global batches and BatchNorm over the global batch: the same computation up to floating-point
    # order (measured: losses equal to 5 digits at first, within 0.1% after 6 steps; weights within 0.1%).
    for a, b in zip(single["loss_curve"], ddp["loss_curve"]):
        assert b == pytest.approx(a, rel=5e-3)
    assert _relative_difference(w1, w2) < 1e-2
    assert "world_size" in ddp["key"] and "world_size" not in single["key"]  # another training, never mixed up


def test_a_killed_distributed_run_resumes_to_the_same_weights(shards):
    reference = _torchrun(shards, shards / "ddp-ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    counter = shards / "kill-counter"
    killed = _torchrun(shards, shards / "ddp-killed", "FACEAUG_KILL_AT=verifier-step:5", f"FACEAUG_KILL_COUNTER={counter}")
    assert killed.returncode != 0
    d = shards / "ddp-killed" / "verifiers" / "baseline" / "seed-0"
    assert (d / "checkpoint.pt").exists() and not (d / "verifier.pt").exists()
    resumed = _torchrun(shards, shards / "ddp-killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (a, wa), (b, wb) = _record(shards / "ddp-ref"), _record(shards / "ddp-killed")
    assert b["resumed_from_step"] == 2
    assert a["loss_curve"] == pytest.approx(b["loss_curve"], rel=1e-6)
    assert _relative_difference(wa, wb) < 1e-6
