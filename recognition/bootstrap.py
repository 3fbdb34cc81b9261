"""The test-set half of an interval: resampling test identities (clusters) with replacement, fast.

A protocol's pairs share identities: an identity with many images takes part in many genuine pairs,
and in many impostor pairs against every other identity. Pairs are therefore not independent, and
resampling them one by one understates the variance. Here the resampling unit is the *identity*
(a cluster bootstrap): a replicate draws the test identities with replacement, and a pair between
identities a and b counts c_a * c_b times (c = how often each was drawn; a pair within one identity
counts c_a times). Every arm and seed is evaluated on the same replicate draws, so differences
between arms are paired.

Speed: a seed's pairs are sorted once; a replicate is then a vector of identity counts pushed through
two integer cumulative sums over the impostor and the genuine pairs (no sort, nothing materialised).
Integer multiplicities give exactly the metric of the materialised resample (tests/recognition
check this on tied scores). The ROC is reduced to its corners at the distinct genuine scores, which
keeps AUC, EER and TAR@FAR exact.

Why not scikit-learn: a replicate there is a weighted `sklearn.metrics.roc_curve` over every pair (pair
weights c_a * c_b, a sort each time). Same numbers (within 3.3e-16 for every metric), but measured by
`benchmarks/roc_backends.py` (docs/bench_roc_backends_cpu.json, 2-core CPU), counts -> every metric of one
replicate takes 0.40 ms here against 10.9 ms (3,000 + 100,000 pairs, 1,000 identities: 27x), and 0.09 ms
against 1.3 ms (3,000 + 3,000 pairs, 1,680 identities: 14x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recognition.metrics import auc_from_roc, eer_from_roc, roc_curve, tar_at_far_from_roc


@dataclass(frozen=True)
class PairScores:
    """One model's scores on one protocol's pairs.

    `groups`: the resampling clusters of each pair, shape (n,) (one identity per pair) or (n, 2)
    (the identities of its two images; equal for a genuine pair). The same for every arm and seed."""

    scores: np.ndarray
    labels: np.ndarray
    groups: np.ndarray


# --- metrics read from a (weighted) ROC ----------------------------------------------------------


@dataclass(frozen=True)
class RocMetric:
    """A metric read from the ROC: callable on (scores, labels), and readable from a weighted ROC."""

    name: str
    read: Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (far, tar, thresholds) -> value
    higher_is_better: bool
    far_level: float | None = None  # the FAR level of a TAR@FAR metric

    def __call__(self, scores, labels) -> float:
        return float(self.read(*roc_curve(scores, labels)))


AUC = RocMetric("auc", lambda far, tar, thr: auc_from_roc(far, tar), True)
EER = RocMetric("eer", lambda far, tar, thr: eer_from_roc(far, tar, thr)[0], False)


def tar_at_far_metric(level: float) -> RocMetric:
    return RocMetric(f"tar@far={level:g}", lambda far, tar, thr: tar_at_far_from_roc(far, tar, level), True, float(level))


def resolve_metric(metric) -> RocMetric:
    """'auc', 'eer', 'tar@far=<level>' or a RocMetric -> RocMetric."""
    if isinstance(metric, RocMetric):
        return metric
    if metric == "auc":
        return AUC
    if metric == "eer":
        return EER
    if isinstance(metric, str) and metric.startswith("tar@far="):
        return tar_at_far_metric(float(metric.split("=", 1)[1]))
    raise ValueError(f"unknown metric {metric!r}; use 'auc', 'eer' or 'tar@far=<level>'")


# --- clusters -------------------------------------------------------------------------------------


def cluster_index(groups_per_run: Sequence[np.ndarray]) -> np.ndarray:
    """The sorted cluster labels, checked to be the same in every run (every arm and seed)."""
    reference = None
    for groups in groups_per_run:
        values = np.unique(np.asarray(groups))
        if reference is None:
            reference = values
        elif values.shape != reference.shape or not np.array_equal(values, reference):
            raise ValueError("every seed and arm must be evaluated on the same test pairs "
                             f"({reference.size} identities in one, {values.size} in another)")
    if reference is None or reference.size == 0:
        raise ValueError("no data")
    return reference


def draw_counts(n_clusters: int, replicate: int, seed: int) -> np.ndarray:
    """How often each cluster is drawn in bootstrap replicate `replicate` (its own generator, so any
    replicate can be regenerated for any run without storing the draws)."""
    drawn = np.random.default_rng([seed, replicate]).integers(0, n_clusters, n_clusters)
    return np.bincount(drawn, minlength=n_clusters)


class PreparedRun:
    """One run's pairs indexed for cheap cluster resampling (built per run, then dropped)."""

    def __init__(self, data: PairScores, clusters: np.ndarray):
        scores = np.asarray(data.scores).ravel()
        labels = np.asarray(data.labels).astype(bool, copy=False).ravel()
        groups = np.asarray(data.groups)
        groups = groups.reshape(-1, 1) if groups.ndim == 1 else groups
        if groups.shape != (scores.size, groups.shape[1]) or groups.shape[1] not in (1, 2) or labels.size != scores.size:
            raise ValueError("scores, labels and groups must describe the same pairs (groups: n or n x 2)")
        self.full = (scores, labels)
        self.n_clusters = clusters.size
        pos = np.searchsorted(clusters, groups)
        first = pos[:, 0]
        # Second cluster: a pair within one identity (or a one-cluster pair) uses the sentinel n_clusters, count 1.
        second = pos[:, 1] if groups.shape[1] == 2 else np.full(scores.size, clusters.size)
        second = np.where(second == first, clusters.size, second)
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        order = np.argsort(-scores)  # order within ties is irrelevant: counts are read at run ends
        s, lab = scores[order], labels[order]
        self.gen = (first[order][lab], second[order][lab])
        self.imp = (first[order][~lab], second[order][~lab])
        gen_scores, imp_scores = s[lab], s[~lab]
        self.n_genuine, self.n_impostor = gen_scores.size, imp_scores.size
        if gen_scores.size == 0 or imp_scores.size == 0:
            self.corners = None
            return
        # The ROC is a staircase with corners at the distinct genuine scores u_1 > ... > u_K; for each
        # k, the point before u_k is accepted (impostors > u_k) and once it is (>= u_k, counting ties).
        gen_last = np.concatenate((np.flatnonzero(np.diff(gen_scores) != 0), [gen_scores.size - 1]))
        u = gen_scores[gen_last]
        neg_imp = -imp_scores  # ascending
        self.gen_last = gen_last
        self.imp_ge = np.searchsorted(neg_imp, -u, side="right")
        self.imp_gt = np.searchsorted(neg_imp, -u, side="left")
        self.thresholds = np.concatenate(([np.inf], np.repeat(u, 2), [min(u[-1], imp_scores[-1])]))
        self.corners = u.size

    @staticmethod
    def _weights(counts: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return counts[pairs[0]] * counts[pairs[1]]

    def roc(self, counts: np.ndarray | None = None):
        """The reduced ROC (far, tar, thresholds) of the resample with cluster `counts` (None: all pairs once).
        Raises ValueError when the resample has no genuine or no impostor pairs."""
        if self.corners is None:
            raise ValueError("no genuine or no impostor pairs")
        full = np.ones(self.n_clusters + 1, dtype=np.int64) if counts is None else \
            np.concatenate((counts.astype(np.int64, copy=False), [1]))
        cum_imp = np.concatenate(([0], np.cumsum(self._weights(full, self.imp))))
        cum_gen = np.cumsum(self._weights(full, self.gen))
        n_genuine, n_impostor = float(cum_gen[-1]), float(cum_imp[-1])
        if n_genuine <= 0 or n_impostor <= 0:
            raise ValueError("no genuine or no impostor pairs")
        tp = cum_gen[self.gen_last]
        k = self.corners
        far = np.empty(2 * k + 2)
        tar = np.empty(2 * k + 2)
        far[0], tar[0], far[-1], tar[-1] = 0.0, 0.0, n_impostor, n_genuine
        far[1:-1:2], far[2:-1:2] = cum_imp[self.imp_gt], cum_imp[self.imp_ge]
        tar[1], tar[3:-1:2], tar[2:-1:2] = 0.0, tp[:-1], tp
        return far / n_impostor, tar / n_genuine, self.thresholds


def replicate_values(runs: Sequence[PairScores], read: Callable, n: int, seed: int, clusters: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(value of `read(far, tar, thr)` on all pairs per run, shape (runs, ...);
    values per replicate and run, shape (n, runs, ...), NaN where a replicate has one class only)."""
    clusters = cluster_index([r.groups for r in runs]) if clusters is None else clusters
    full, reps = [], []
    for run in runs:
        prepared = PreparedRun(run, clusters)
        full.append(np.asarray(read(*prepared.roc()), dtype=np.float64))
        values = np.full((n,) + full[-1].shape, np.nan)
        for r in range(n):
            try:
                values[r] = read(*prepared.roc(draw_counts(clusters.size, r, seed)))
            except ValueError:
                pass
        reps.append(values)
        del prepared
    return np.stack(full), np.stack(reps, axis=1)
