"""Hierarchical bootstrap: exact fast path, coverage, width, verdicts, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recognition.metrics import auc, eer, roc_curve, tar_at_far
from recognition.statistics import (
    AUC,
    EER,
    _Seed,
    bootstrap_metric,
    paired_difference,
    roc_band,
    tar_at_far_metric,
)

TRUE_AUC = 0.5 * math.erfc(-1.0 / 2.0)  # genuine N(1,1) vs impostor N(0,1): Phi(1 / sqrt(2))


def _arm(n_groups: int, seeds, shift: float = 1.0, genuine: int = 4, impostor: int = 40):
    """One (scores, labels, groups) per seed: each group (a query identity) has `genuine`
    genuine scores ~ N(shift, 1) and `impostor` impostor scores ~ N(0, 1)."""
    out = []
    per = genuine + impostor
    labels = np.tile(np.r_[np.ones(genuine, bool), np.zeros(impostor, bool)], n_groups)
    groups = np.repeat(np.arange(n_groups) * 7 + 100, per)  # arbitrary group labels
    for s in seeds:
        rng = np.random.default_rng(s)
        out.append((rng.normal(size=labels.size) + shift * labels, labels, groups))
    return out


def test_fast_path_equals_materialised_resample_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(20, 200))
        scores = rng.integers(0, int(rng.integers(2, 10)), n).astype(float)  # heavy ties
        labels = rng.random(n) < 0.4
        groups = rng.integers(0, 8, n)
        values = np.unique(groups)
        prepared = _Seed((scores, labels, groups), values, 1.0, 0)
        drawn = rng.integers(0, values.size, values.size)
        rows = prepared.rows(drawn)
        if labels[rows].all() or not labels[rows].any():
            continue
        full = roc_curve(scores[rows], labels[rows])
        fast = prepared.roc(np.bincount(drawn, minlength=values.size))
        assert AUC.read(*fast) == pytest.approx(auc(scores[rows], labels[rows]), abs=1e-12)
        assert EER.read(*fast) == pytest.approx(eer(scores[rows], labels[rows])[0], abs=1e-12)
        for level in (0.05, 0.3):
            assert tar_at_far_metric(level).read(*fast) == tar_at_far(scores[rows], labels[rows], level)["tar"]
        assert AUC.read(*full) == pytest.approx(AUC.read(*fast), abs=1e-12)


def test_ci_contains_true_value_and_shrinks_with_data():
    small = bootstrap_metric(_arm(60, seeds=[1, 2, 3]), AUC, n=200, seed=0)
    large = bootstrap_metric(_arm(960, seeds=[1, 2, 3]), AUC, n=200, seed=0)
    for r in (small, large):
        assert r["ci_low"] < TRUE_AUC < r["ci_high"]
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
        assert len(r["seed_values"]) == 3 and r["seed_std"] > 0 and r["replicates"] == 200
    assert r["mean"] == pytest.approx(np.mean([auc(s, l) for s, l, _ in _arm(960, seeds=[1, 2, 3])]))
    # 16x the groups: about a quarter of the width
    assert (large["ci_high"] - large["ci_low"]) < 0.5 * (small["ci_high"] - small["ci_low"])


def test_named_and_callable_metrics_agree():
    data = _arm(30, seeds=[4, 5])
    by_name = bootstrap_metric(data, "auc", n=40, seed=9)
    by_object = bootstrap_metric(data, AUC, n=40, seed=9)
    by_callable = bootstrap_metric(data, lambda s, l: auc(s, l), n=40, seed=9)  # materialised path
    assert by_name == by_object
    for key in ("mean", "ci_low", "ci_high"):
        assert by_callable[key] == pytest.approx(by_object[key], abs=1e-12)
    r = bootstrap_metric(data, "tar@far=1e-2", n=20, seed=9)
    assert 0 <= r["ci_low"] <= r["ci_high"] <= 1


def test_deterministic_under_seed():
    data = _arm(40, seeds=[1, 2])
    a = bootstrap_metric(data, EER, n=50, seed=5)
    b = bootstrap_metric(data, EER, n=50, seed=5)
    c = bootstrap_metric(data, EER, n=50, seed=6)
    assert a == b
    assert (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])


def test_clearly_better_arm_is_a_gain():
    better = _arm(200, seeds=[11, 12, 13], shift=1.6)
    base = _arm(200, seeds=[21, 22, 23], shift=1.0)
    r = paired_difference(better, base, AUC, n=200, seed=0)
    assert r["verdict"] == "gain" and r["ci_low"] > 0 and r["diff_mean"] > 0
    assert r["diff_mean"] == pytest.approx(r["a_mean"] - r["b_mean"])
    # EER: lower is better, so the better arm's negative difference is also a gain.
    r = paired_difference(better, base, EER, n=200, seed=0)
    assert r["higher_is_better"] is False and r["ci_high"] < 0 and r["verdict"] == "gain"
    assert paired_difference(base, better, AUC, n=200, seed=0)["verdict"] == "loss"


def test_identical_and_equivalent_arms_show_no_difference():
    arm = _arm(100, seeds=[1, 2, 3])
    r = paired_difference(arm, arm, AUC, n=100, seed=0)
    assert r["ci_low"] == r["ci_high"] == r["diff_mean"] == 0.0
    assert r["verdict"] == "no measurable difference"
    # Same distribution, different training noise: the interval straddles zero.
    r = paired_difference(_arm(100, seeds=[1, 2, 3]), _arm(100, seeds=[4, 5, 6]), AUC, n=200, seed=0)
    assert r["ci_low"] < 0 < r["ci_high"] and r["verdict"] == "no measurable difference"


def test_arms_must_share_groups_and_seed_counts():
    with pytest.raises(ValueError, match="paired seeds"):
        paired_difference(_arm(10, [1, 2]), _arm(10, [1]), AUC, n=5)
    with pytest.raises(ValueError, match="same test groups"):
        paired_difference(_arm(10, [1]), _arm(11, [1]), AUC, n=5)


def test_roc_band_brackets_the_mean_curve():
    grid = np.logspace(-2, 0, 9)
    data = _arm(100, seeds=[1, 2])
    mean, low, high = roc_band(data, grid, n=100, seed=0)
    assert mean.shape == low.shape == high.shape == grid.shape
    assert np.all(low <= mean + 1e-12) and np.all(mean <= high + 1e-12)
    assert high[-1] == low[-1] == 1.0
    assert np.all(np.diff(mean) >= 0)


def test_lfw_style_groups_none_and_impostor_subsampling():
    rng = np.random.default_rng(0)
    labels = np.tile([True, False], 300)
    data = [(rng.normal(size=600) + labels, labels, None) for _ in range(2)]
    r = bootstrap_metric(data, AUC, n=100, seed=0)
    assert r["ci_low"] < TRUE_AUC < r["ci_high"]
    full = bootstrap_metric(_arm(200, [3, 4]), AUC, n=100, seed=0)
    sub = bootstrap_metric(_arm(200, [3, 4]), AUC, n=100, seed=0, impostor_fraction=0.25)
    assert sub["mean"] == pytest.approx(full["mean"], abs=1e-12)  # the point estimate uses every pair
    assert sub["ci_low"] < TRUE_AUC < sub["ci_high"]
    # a quarter of the impostors: about the same interval (the genuine pairs dominate its width)
    half_width = (full["ci_high"] - full["ci_low"]) / 2
    assert abs((sub["ci_low"] + sub["ci_high"]) / 2 - (full["ci_low"] + full["ci_high"]) / 2) < half_width / 2
