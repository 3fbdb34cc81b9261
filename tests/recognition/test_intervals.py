"""Intervals that hold their coverage: the identity-cluster bootstrap (exact fast path), the two-component
interval, verdicts, Holm, the minimal detectable difference, planning, and the null simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recognition.bootstrap import AUC, EER, PairScores, PreparedRun, cluster_index, draw_counts, tar_at_far_metric
from recognition.intervals import (
    GAIN, LOSS, NONE, NOT_RESOLVABLE, TOO_FEW_SEEDS, Calibration, adjusted_verdict, estimate, fraction_from, holm, mdd,
    null_variance_from_baseline, paired_difference, roc_band, variance_from_comparison,
)
from recognition.metrics import auc, eer, roc_curve, tar_at_far

TRUE_AUC = 0.5 * math.erfc(-1.0 / 2.0)  # genuine N(1,1) vs impostor N(0,1): Phi(1 / sqrt(2))


def _materialised(scores, labels, groups, counts):
    """The resample, built pair by pair: a pair of identities a, b appears counts[a] * counts[b] times (once each
    for a pair within one identity)."""
    a, b = groups[:, 0], groups[:, 1]
    weight = np.where(a == b, counts[a], counts[a] * counts[b])
    rows = np.repeat(np.arange(scores.size), weight)
    return scores[rows], labels[rows]


def test_fast_path_equals_the_materialised_two_way_resample_with_ties():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        n = int(rng.integers(20, 200))
        scores = rng.integers(0, int(rng.integers(2, 10)), n).astype(float)  # heavy ties
        labels = rng.random(n) < 0.4
        groups = rng.integers(0, 8, (n, 2))
        groups[labels, 1] = groups[labels, 0]  # genuine pairs within one identity
        clusters = cluster_index([groups])
        prepared = PreparedRun(PairScores(scores, labels, groups), clusters)
        counts = np.bincount(rng.integers(0, clusters.size, clusters.size), minlength=clusters.size)
        pos = np.searchsorted(clusters, groups)
        s, lab = _materialised(scores, labels, pos, counts)
        if lab.all() or not lab.any():
            continue
        fast = prepared.roc(counts)
        assert AUC.read(*fast) == pytest.approx(auc(s, lab), abs=1e-12)
        assert EER.read(*fast) == pytest.approx(eer(s, lab)[0], abs=1e-12)
        for level in (0.05, 0.3):
            assert tar_at_far_metric(level).read(*fast) == tar_at_far(s, lab, level)["tar"]
        assert AUC.read(*roc_curve(s, lab)) == pytest.approx(AUC.read(*fast), abs=1e-12)
        checked += 1
    assert checked > 100


def _world(rng, n_id=60, m=5, impostors_per=40, sigma_u=0.5, sigma_w=0.3):
    """Test pairs of n_id identities with m images: genuine pairs within identities, impostors across; identity
    effects shared by every model (some people are hard to match, some look alike)."""
    ids = np.repeat(np.arange(n_id), m)
    genuine = [(a, b) for i in range(n_id) for a in range(i * m, i * m + m) for b in range(a + 1, i * m + m)]
    impostor = []
    for i in range(n_id):
        for j in rng.choice(np.delete(np.arange(n_id), i), impostors_per):
            impostor.append((i * m + rng.integers(m), j * m + rng.integers(m)))
    pairs = np.array(genuine + impostor)
    labels = np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]
    return pairs, labels, ids, rng.normal(0, sigma_u, n_id), rng.normal(0, sigma_w, n_id)


def _model(rng, world, shift=0.0, sigma_seed=0.25, sigma_interaction=0.3, seed_effect=None):
    """One trained model's scores: a seed effect on how well genuine pairs match (`seed_effect`: shared with the
    other arm trained with the same seed), a model x identity interaction, noise."""
    pairs, labels, ids, u, w = world
    left, right = ids[pairs[:, 0]], ids[pairs[:, 1]]
    v = rng.normal(0, sigma_interaction, u.size)
    effect = rng.normal(0, sigma_seed) if seed_effect is None else seed_effect
    genuine = 1.5 + shift + effect + u[left] + v[left]
    scores = np.where(labels, genuine, w[left] + w[right]) + rng.normal(0, 1, labels.size)
    return PairScores(scores, labels, np.stack([left, right], 1))


def _calls(shift: float, experiments: int, seeds: int = 3, sigma_seed: float = 0.25) -> float:
    calls = 0
    for r in range(experiments):
        rng = np.random.default_rng(1000 + r)
        world = _world(rng)
        a = [_model(rng, world, shift, sigma_seed) for _ in range(seeds)]
        b = [_model(rng, world, 0.0, sigma_seed) for _ in range(seeds)]
        calls += paired_difference(a, b, "auc", n=150, seed=r).verdict in (GAIN, LOSS)
    return calls / experiments


@pytest.mark.parametrize("sigma_seed", [0.4, 0.1])
def test_null_simulation_false_calls_at_most_about_the_nominal_level(sigma_seed):
    # Two arms with no true difference, 3 seeds, a seed effect present, a fresh test set per experiment.
    # 200 experiments: at a true 5% rate, 4.9% of runs of this test would see > 9.0% (binomial tail);
    # the percentile bootstrap over seeds that this replaced called 13-23% here.
    rate = _calls(0.0, 200, sigma_seed=sigma_seed)
    assert rate <= 0.09, rate


def test_a_planted_difference_is_found():
    assert _calls(0.6, 40, sigma_seed=0.05) >= 0.8  # with a strong seed effect 3 seeds have little power (planning says how many)


def test_one_seed_gets_no_verdict_and_unresolvable_levels_are_not_called():
    rng = np.random.default_rng(3)
    world = _world(rng)
    a, b = [_model(rng, world, 1.0)], [_model(rng, world)]
    d = paired_difference(a, b, "auc", n=100)
    assert d.verdict == TOO_FEW_SEEDS and d.p_value is None and d.ci_low < d.diff_mean < d.ci_high
    d = paired_difference(a * 2, b * 2, "tar@far=0.0001", n=50, resolvable=False)
    assert d.verdict == NOT_RESOLVABLE and d.p_value is None


def test_estimate_covers_the_truth_and_differences_have_the_right_sign():
    rng = np.random.default_rng(5)
    labels = np.tile(np.r_[np.ones(4, bool), np.zeros(40, bool)], 300)
    groups = np.repeat(np.arange(300), 44)
    arm = [PairScores(rng.normal(size=labels.size) + labels, labels, groups) for _ in range(3)]
    e = estimate(arm, AUC, n=200)
    assert e.ci_low < TRUE_AUC < e.ci_high and len(e.seed_values) == 3
    better = [PairScores(rng.normal(size=labels.size) + 1.8 * labels, labels, groups) for _ in range(3)]
    d = paired_difference(better, arm, AUC, n=200)
    assert d.verdict == GAIN and d.diff_mean == pytest.approx(d.a_mean - d.b_mean)
    d = paired_difference(better, arm, EER, n=200)
    assert d.higher_is_better is False and d.ci_high < 0 and d.verdict == GAIN
    assert paired_difference(arm, better, AUC, n=200).verdict == LOSS
    same = paired_difference(arm, arm, AUC, n=50)
    assert same.diff_mean == 0 and same.verdict == NONE


def test_calibration_runs_from_normal_to_beyond_t_with_few_seeds():
    z = Calibration(1.0, None, 3).critical()
    assert z == pytest.approx(1.959964, abs=1e-5)
    assert Calibration(1.0, 1e-9, 3).critical() == pytest.approx(z, abs=1e-3)  # the test part dominates: normal
    seeds_dominate = Calibration(1e-9, 1.0, 3).critical()
    assert seeds_dominate > 4.30  # t(2)'s 97.5% point, and more (the seed variance is taken at its upper limit)
    mid = Calibration(1.0, 1.0, 3)
    assert z < mid.critical() < seeds_dominate
    assert mid.p_value(mid.critical()) == pytest.approx(0.05, abs=1e-6)
    assert mdd(1.0, z) == pytest.approx(1.959964 + 0.841621, abs=1e-5)


def test_holm():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([]) == []
    rng = np.random.default_rng(9)
    world = _world(rng)
    d = paired_difference([_model(rng, world, 1.0) for _ in range(3)], [_model(rng, world) for _ in range(3)], "auc", n=100)
    assert adjusted_verdict(d, 0.2) == NONE and adjusted_verdict(d, 0.001) == GAIN


def test_fraction_of_the_positive_controls_gain():
    rng = np.random.default_rng(11)
    world = _world(rng)
    control = [_model(rng, world, 0.0, 0.05) for _ in range(3)]
    positive = [_model(rng, world, 1.0, 0.05) for _ in range(3)]
    half = [_model(rng, world, 0.5, 0.05) for _ in range(3)]
    from recognition.bootstrap import replicate_values

    clusters = cluster_index([r.groups for r in control])
    vals = {name: replicate_values(runs, AUC.read, 150, 0, clusters) for name, runs in
            (("c", control), ("p", positive), ("e", half))}
    pos = paired_difference(positive, control, AUC, n=150)
    f = fraction_from("auc", vals["e"], vals["c"], vals["p"], pos)
    assert 0.2 < f.fraction < 0.8 and f.ci_low < f.fraction < f.ci_high
    nothing = paired_difference(control, control, AUC, n=20)
    assert fraction_from("auc", vals["e"], vals["c"], vals["c"], nothing).fraction is None


def test_planning_from_a_baseline_alone():
    rng = np.random.default_rng(13)
    world = _world(rng, n_id=80)
    baseline = [_model(rng, world) for _ in range(3)]
    parts = null_variance_from_baseline(baseline, "auc", n=100)
    assert parts.seed_sd > 0 and parts.se_test > 0 and parts.identities == 80
    assert parts.mdd(6, 80) < parts.mdd(3, 80) and parts.mdd(3, 320) < parts.mdd(3, 80)
    small = parts.mdd(3, 80) / 2
    seeds = parts.seeds_needed(small)
    assert seeds is None or parts.mdd(seeds, 80) <= small < parts.mdd(seeds - 1, 80)
    ids = parts.identities_needed(parts.mdd(3, 80) * 0.9, seeds=3)
    assert ids is None or ids > 80
    with pytest.raises(ValueError, match="at least 2 seeds"):
        null_variance_from_baseline(baseline[:1], "auc")


def test_planning_from_a_finished_comparison_reads_its_same_seed_differences():
    # Arms trained with the same seed share its effect: their differences vary less than two baseline seeds do,
    # and planning from the comparison says so; its MDD at the run's own design is the one the report shows.
    rng = np.random.default_rng(21)
    world = _world(rng, n_id=80)
    effects = rng.normal(0, 0.5, 3)
    a = [_model(rng, world, 0.2, seed_effect=e) for e in effects]
    b = [_model(rng, world, seed_effect=e) for e in effects]
    pilot = variance_from_comparison(a, b, "auc", n=100)
    assert pilot.seed_sd < null_variance_from_baseline(b, "auc", n=100).seed_sd
    assert pilot.mdd(3, 80) == pytest.approx(paired_difference(a, b, "auc", n=100).mdd, rel=1e-9)
    # few seeds are read with a wider critical value than the normal quantile
    assert pilot.mdd(3, 80) > mdd(pilot.se(3, 80), 1.959964)
    target = pilot.mdd(3, 80) * 0.6
    k = pilot.seeds_needed(target)
    assert k is not None and pilot.mdd(k, 80) <= target < pilot.mdd(k - 1, 80)
    n = pilot.identities_needed(pilot.mdd(8, 80) * 0.9, seeds=8)
    assert n is not None and pilot.mdd(8, n) <= pilot.mdd(8, 80) * 0.9 < pilot.mdd(8, n - 1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        variance_from_comparison(a[:1], b[:1], "auc")


def test_roc_band_brackets_the_mean_curve_and_draws_are_reproducible():
    rng = np.random.default_rng(17)
    world = _world(rng)
    runs = [_model(rng, world) for _ in range(2)]
    grid = np.logspace(-2, 0, 9)
    mean, low, high = roc_band(runs, grid, n=80)
    assert np.all(low <= mean + 1e-12) and np.all(mean <= high + 1e-12) and mean[-1] == 1.0
    assert np.array_equal(draw_counts(50, 7, 3), draw_counts(50, 7, 3))
    with pytest.raises(ValueError, match="same test pairs"):
        paired_difference(runs, [_model(rng, _world(rng, n_id=61))] * 2, "auc", n=5)
