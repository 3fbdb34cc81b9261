"""The hand-written ROC code that stays (it is faster: benchmarks/roc_backends.py) gives scikit-learn's numbers:
a bootstrap replicate's reduced weighted ROC against scikit-learn's weighted ROC of every pair, on tied scores."""

from __future__ import annotations

import numpy as np
import pytest

from recognition.bootstrap import AUC, EER, PairScores, PreparedRun, cluster_index, draw_counts, tar_at_far_metric
from recognition.metrics import tar_on_grid_from_roc

metrics = pytest.importorskip("sklearn.metrics")
READERS = [AUC, EER, tar_at_far_metric(0.01), tar_at_far_metric(0.1)]
GRID = np.logspace(-3, 0, 13)


def _read(far, tar, thr):
    return np.concatenate([[m.read(far, tar, thr) for m in READERS], tar_on_grid_from_roc(far, tar, GRID)])


def test_bootstrap_replicates_equal_sklearn_weighted_roc():
    rng = np.random.default_rng(5)
    identities = 40
    gen_id = rng.integers(0, identities, 150)
    a = rng.integers(0, identities, 1500)
    b = (a + rng.integers(1, identities, a.size)) % identities
    groups = np.concatenate((np.stack([gen_id, gen_id], 1), np.stack([a, b], 1)))
    labels = np.concatenate((np.ones(gen_id.size, bool), np.zeros(a.size, bool)))
    scores = np.round(np.concatenate((rng.normal(0.6, 0.2, gen_id.size), rng.normal(0.1, 0.2, a.size))), 2)  # many ties
    data = PairScores(scores, labels, groups)
    clusters = cluster_index([groups])
    prepared = PreparedRun(data, clusters)
    pos = np.searchsorted(clusters, groups)
    second = np.where(pos[:, 1] == pos[:, 0], clusters.size, pos[:, 1])  # within one identity: counted c_a times
    checked = 0
    for r in range(30):
        counts = draw_counts(clusters.size, r, 0)
        full = np.concatenate((counts, [1])).astype(float)
        w = full[pos[:, 0]] * full[second]
        if not (w * labels).sum() or not (w * ~labels).sum():
            continue
        ours = _read(*prepared.roc(counts))
        theirs = _read(*metrics.roc_curve(labels, scores, sample_weight=w, drop_intermediate=False))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        assert ours[0] == pytest.approx(metrics.roc_auc_score(labels, scores, sample_weight=w), abs=1e-12)
        checked += 1
    assert checked >= 25
