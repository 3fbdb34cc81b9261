"""The tiny run that the experiment, report and results tests share (built once per test session)."""

from __future__ import annotations

import os

import pytest

ARMS = ["baseline", "aug-eyeglasses", "aug-eyeglasses@identity", "aug-eyeglasses@counterfactual"]


@pytest.fixture(scope="session")
def _tiny_run_built(tmp_path_factory):
    from flows.run import run_stage
    from flows.stages import stage
    from pipeline.config import load_config
    from recognition.evaluation import evaluate_run

    root = tmp_path_factory.mktemp("tinyrun")
    cwd = os.getcwd()
    os.chdir(root)  # the synthetic benchmark renders under ./data
    try:
        cfg = load_config("tiny", {"output_dir": str(root / "run"), "workers": 2, "verifier": {"threads": 1, "arms": ARMS, "seeds": [0, 1]}})
        for name in ("prepare data", "train editors", "augment", "train verifiers"):
            run_stage(stage(name), cfg, lambda *_: None)
        results = evaluate_run(cfg, progress=lambda *_: None)
    finally:
        os.chdir(cwd)
    return root, cfg, results


@pytest.fixture
def tiny_run(_tiny_run_built, monkeypatch):
    """A tiny run with the edited arm, its no-edit control and its positive control, two seeds each, evaluated:
    (config, results); the test runs in the run's working directory (where its synthetic benchmark is)."""
    root, cfg, results = _tiny_run_built
    monkeypatch.chdir(root)
    return cfg, results
