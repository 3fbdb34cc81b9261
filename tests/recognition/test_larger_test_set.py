"""More test identities, the same training data: the verifiers of a finished run are reused, not trained again
(data.synthetic.extra_test_identities + verifier.reuse_from), so a design can grow its test set without
retraining what it has."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline.config import load_config

QUIET = lambda *_: None  # noqa: E731


def test_a_run_with_more_test_identities_reuses_the_finished_runs_verifiers(tmp_path, monkeypatch):
    from recognition import embedding
    from recognition.experiment import embed_tests
    from flows.run import run_stage
    from flows.stages import stage
    from pipeline.ingest import prepare_data
    from pipeline.layout import RunLayout
    from recognition.verifier import TRAINING_JSON, WEIGHTS

    monkeypatch.chdir(tmp_path)  # the synthetic benchmarks render under ./data
    common = {"workers": 1, "data.split": "official", "verifier.threads": 1, "verifier.arms": ["baseline"], "verifier.seeds": [0]}
    small = load_config("tiny", {**common, "output_dir": str(tmp_path / "small")})
    large = load_config("tiny", {**common, "output_dir": str(tmp_path / "large"), "data.synthetic.extra_test_identities": 6,
                                 "verifier.reuse_from": [str(tmp_path / "small")]})
    summaries = {}
    for cfg in (small, large):
        summaries[cfg.output_dir] = prepare_data(cfg, progress=QUIET)
        run_stage(stage("train verifiers"), cfg, QUIET)
    s, g = summaries[small.output_dir], summaries[large.output_dir]
    assert g["test"]["identities"] == s["test"]["identities"] + 6 and g["train"] == s["train"] and g["valid"] == s["valid"]

    lent, kept = RunLayout(small).verifier_dir("baseline", 0), RunLayout(large).verifier_dir("baseline", 0)
    record = json.loads((kept / TRAINING_JSON).read_text())
    assert record["reused_from"] == str(lent) and record["stream"] == json.loads((lent / TRAINING_JSON).read_text())["stream"]
    assert (kept / WEIGHTS).read_bytes() == (lent / WEIGHTS).read_bytes()

    # without the finished run to reuse, the same arm is trained (the reuse is not a default)
    alone = load_config("tiny", {**common, "output_dir": str(tmp_path / "alone"), "data.synthetic.extra_test_identities": 6})
    prepare_data(alone, progress=QUIET)
    run_stage(stage("train verifiers"), alone, QUIET)
    assert "reused_from" not in json.loads((RunLayout(alone).verifier_dir("baseline", 0) / TRAINING_JSON).read_text())

    # its test embeddings are its own (the larger test set), made with the precision asked and recorded in the cache
    emb = embed_tests(large, "baseline", 0)
    assert np.unique(emb["celeba_identity"]).size == g["test"]["identities"]
    bf16 = load_config("tiny", {**common, "output_dir": str(tmp_path / "large"), "data.synthetic.extra_test_identities": 6,
                                "evaluation.precision": "bf16"})
    low = embed_tests(bf16, "baseline", 0)
    cosine = (low["celeba_emb"] * emb["celeba_emb"]).sum(axis=1)
    assert not np.array_equal(low["celeba_emb"], emb["celeba_emb"]) and cosine.min() > 0.99
    again = embed_tests(large, "baseline", 0)  # the bf16 cache is not taken for fp32
    np.testing.assert_array_equal(again["celeba_emb"], emb["celeba_emb"])

    # a verifier equal byte for byte to another arm's of the run (a shared no-edit control) takes its embeddings
    twins = load_config("tiny", {**common, "output_dir": str(tmp_path / "large"), "data.synthetic.extra_test_identities": 6,
                                 "verifier.arms": ["baseline", "aug-eyeglasses@identity"]})
    shutil.copytree(kept, RunLayout(twins).verifier_dir("aug-eyeglasses@identity", 0))
    (RunLayout(twins).verifier_dir("aug-eyeglasses@identity", 0) / "embeddings.npz").unlink()
    monkeypatch.setattr(embedding, "embed_store", lambda *a, **k: pytest.fail("a twin's embeddings were computed again"))
    shared = embed_tests(twins, "aug-eyeglasses@identity", 0)
    np.testing.assert_array_equal(shared["celeba_emb"], emb["celeba_emb"])
