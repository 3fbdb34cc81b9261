"""Verification metrics: hand-computed cases, and agreement with scikit-learn on tied data."""

from __future__ import annotations

import numpy as np
import pytest

from recognition.metrics import (
    accuracy_at_threshold,
    auc,
    best_threshold,
    eer,
    roc_curve,
    roc_on_grid,
    summarise,
    tar_at_far,
)

HAND_SCORES = [0.9, 0.8, 0.7, 0.6]
HAND_LABELS = [1, 0, 1, 0]


def test_roc_hand_case():
    far, tar, thr = roc_curve(HAND_SCORES, HAND_LABELS)
    np.testing.assert_allclose(far, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tar, [0, 0.5, 0.5, 1, 1])
    assert thr[0] == np.inf
    np.testing.assert_allclose(thr[1:], [0.9, 0.8, 0.7, 0.6])


def test_auc_hand_cases():
    # Pairs (genuine, impostor) ordered correctly: (0.9,0.8) (0.9,0.6) (0.7,0.6); wrong: (0.7,0.8).
    assert auc(HAND_SCORES, HAND_LABELS) == pytest.approx(0.75)
    assert auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    # One genuine tied with one of two impostors: (1 + 1/2) / 2.
    assert auc([0.5, 0.5, 0.1], [1, 0, 0]) == pytest.approx(0.75)
    # All tied: chance.
    assert auc([0.3] * 6, [1, 0, 1, 0, 0, 1]) == pytest.approx(0.5)


def test_roc_ties_form_one_diagonal_step():
    far, tar, thr = roc_curve([0.5, 0.5, 0.5, 0.1], [1, 0, 0, 0])
    np.testing.assert_allclose(far, [0, 2 / 3, 1])
    np.testing.assert_allclose(tar, [0, 1, 1])


def test_eer_hand_cases():
    # Perfect separation: EER 0 at the lowest genuine score.
    e, thr = eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert e == 0.0 and thr == pytest.approx(0.8)
    # Hand case: at threshold 0.8 FAR = FRR = 1/2.
    e, thr = eer(HAND_SCORES, HAND_LABELS)
    assert e == pytest.approx(0.5) and thr == pytest.approx(0.8)
    # Interpolated crossing: genuine [0.9, 0.7, 0.5], impostors [0.8, 0.6, 0.4, 0.3]
    # ROC points (far, frr): thr 0.7 -> (1/4, 1/3), thr 0.6 -> (2/4, 1/3): FAR crosses FRR = 1/3
    # on that segment, at t = (1/3 - 1/4) / (1/4), threshold 0.7 - t * 0.1.
    e, thr = eer([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [1, 0, 1, 0, 1, 0, 0])
    assert e == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.7 - (1 / 3) * 0.1)


def test_tar_at_far_hand_case_and_resolvable_flag():
    # genuine [0.9, 0.8, 0.7, 0.3], impostors [0.85, 0.6, 0.5, 0.4, 0.2] (each 1/5 of FAR).
    scores = [0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    labels = [1, 0, 1, 1, 0, 0, 0, 1, 0]
    r = tar_at_far(scores, labels, 0.2)  # at most one impostor accepted: lowest such threshold 0.7
    assert r["tar"] == pytest.approx(0.75)
    assert r["threshold"] == pytest.approx(0.7)
    assert r["far_achieved"] == pytest.approx(0.2)
    assert r["impostors"] == 5
    assert r["resolvable"] is False  # 0.2 x 5 = 1 impostor at the level, < 10
    assert "needs ≥ 50 impostor pairs; only 5 here" in r["note"]
    r = tar_at_far(scores, labels, 0.1)  # no impostor may pass: only 0.9 accepted
    assert r["tar"] == pytest.approx(0.25) and r["threshold"] == pytest.approx(0.9) and r["far_achieved"] == 0.0


def test_tar_at_far_resolvable_boundary_and_note():
    rng = np.random.default_rng(0)
    for n_imp, expected in ((2310, False), (10_000, True)):
        scores = np.concatenate((rng.normal(2, 1, 100), rng.normal(0, 1, n_imp)))
        labels = np.concatenate((np.ones(100, bool), np.zeros(n_imp, bool)))
        r = tar_at_far(scores, labels, 1e-3)
        assert r["resolvable"] is expected
        assert r["far_achieved"] <= 1e-3
    r = tar_at_far(np.r_[rng.normal(2, 1, 10), rng.normal(0, 1, 2310)], np.r_[np.ones(10), np.zeros(2310)], 1e-3)
    assert r["note"] == "FAR 1e-3 needs ≥ 10,000 impostor pairs; only 2,310 here"


def test_best_threshold_and_accuracy():
    # Candidates: -inf 2/4, 0.65 3/4, 0.75 2/4, 0.85 3/4, +inf 2/4: the lowest best is 0.65.
    thr, acc = best_threshold(HAND_SCORES, HAND_LABELS)
    assert thr == pytest.approx(0.65) and acc == pytest.approx(0.75)
    assert accuracy_at_threshold(HAND_SCORES, HAND_LABELS, thr) == pytest.approx(0.75)
    thr, acc = best_threshold([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert thr == pytest.approx(0.5) and acc == 1.0
    # Score == threshold counts as accepted.
    assert accuracy_at_threshold([0.5, 0.5], [1, 0], 0.5) == 0.5


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 15, 200) / 10.0
    labels = rng.random(200) < 0.4
    thr, acc = best_threshold(scores, labels)
    u = np.unique(scores)
    candidates = np.concatenate(([-np.inf], (u[:-1] + u[1:]) / 2, [np.inf]))
    accs = [accuracy_at_threshold(scores, labels, c) for c in candidates]
    assert acc == pytest.approx(max(accs))
    assert thr == candidates[int(np.argmax(accs))]


def test_against_sklearn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    for trial in range(20):
        n = int(rng.integers(5, 400))
        scores = rng.integers(0, int(rng.integers(2, 30)), n) / 7.0  # many ties
        labels = rng.random(n) < rng.uniform(0.1, 0.9)
        if labels.all() or not labels.any():
            continue
        far, tar, thr = roc_curve(scores, labels)
        s_far, s_tar, s_thr = metrics.roc_curve(labels, scores, drop_intermediate=False)
        np.testing.assert_allclose(far, s_far)
        np.testing.assert_allclose(tar, s_tar)
        np.testing.assert_allclose(thr[1:], s_thr[1:])
        assert auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores), abs=1e-12)
        w = rng.integers(0, 4, n).astype(float)
        if (w * labels).sum() > 0 and (w * ~labels).sum() > 0:
            assert auc(scores, labels, sample_weight=w) == pytest.approx(
                metrics.roc_auc_score(labels, scores, sample_weight=w), abs=1e-12
            )


def test_weights_equal_repetition():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 50).astype(float)
    labels = rng.random(50) < 0.5
    w = rng.integers(0, 3, 50)
    rep = np.repeat(np.arange(50), w)
    assert auc(scores, labels, w) == pytest.approx(auc(scores[rep], labels[rep]))
    assert eer(scores, labels, w)[0] == pytest.approx(eer(scores[rep], labels[rep])[0])


def test_roc_on_grid_and_summarise_are_consistent():
    rng = np.random.default_rng(4)
    scores = np.concatenate((rng.normal(1.5, 1, 300), rng.normal(0, 1, 3000)))
    labels = np.concatenate((np.ones(300, bool), np.zeros(3000, bool)))
    grid = np.logspace(-3, 0, 13)
    on_grid = roc_on_grid(scores, labels, grid)
    for level, tar in zip(grid, on_grid):
        assert tar == tar_at_far(scores, labels, level)["tar"]
    assert np.all(np.diff(on_grid) >= 0) and on_grid[-1] == 1.0
    s = summarise(scores, labels, far_levels=(1e-3, 1e-2))
    assert s["genuine"] == 300 and s["impostors"] == 3000
    assert s["auc"] == pytest.approx(auc(scores, labels))
    assert s["eer"] == pytest.approx(eer(scores, labels)[0])
    assert s["tar_at_far"][1e-3]["resolvable"] is False  # 3 impostors at the level
    assert s["tar_at_far"][1e-2]["resolvable"] is True  # 30
    assert s["tar_at_far"][1e-2]["tar"] == tar_at_far(scores, labels, 1e-2)["tar"]


def test_bad_input():
    with pytest.raises(ValueError, match="genuine and impostor"):
        auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        roc_curve([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        auc([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="0/1"):
        auc([0.1, 0.2], [2, 0])
