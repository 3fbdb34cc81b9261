"""Verification metrics on similarity scores: ROC, AUC, EER, TAR@FAR, best-accuracy threshold.

Pure NumPy, no framework import. Conventions used everywhere in this module:

* `scores` are similarities: higher means "more likely the same person".
* `labels` are genuine flags (bool or 0/1): True for a same-identity pair.
* A pair is *accepted* when `score >= threshold` (as in sklearn's `roc_curve`).
* FAR = accepted impostors / impostors, TAR = accepted genuines / genuines, FRR = 1 - TAR.
* Optional `sample_weight` gives each pair a multiplicity. Integer weights give exactly the
  result of repeating the pairs, which is how `recognition.statistics` evaluates a bootstrap
  replicate without materialising it.

The ROC-derived metrics are also available as functions of an already computed ROC
(`auc_from_roc`, `eer_from_roc`, `tar_at_far_from_roc`, `tar_on_grid_from_roc`), so a caller
that builds many ROCs cheaply (the bootstrap) reads them all the same way.

Why not scikit-learn's `roc_curve` / `roc_auc_score`: they give the same numbers (the ROC point for point,
AUC within 1.1e-16; tests/recognition/test_metrics.py checks it on tied data) but are slower at every size
the evaluation sees, mostly from input validation (label checks, finiteness, a second cumulative sum to
check the first). `benchmarks/roc_backends.py` (docs/bench_roc_backends_cpu.json, 2-core CPU, medians of 41):

| pairs (genuine + impostor)   | roc_curve: here / sklearn | auc: here / sklearn | every metric of one ROC |
| 3,000 + 100,000 (CelebA-size)| 17.9 / 20.3 ms (1.13x)    | 19.3 / 32.1 ms (1.67x) | 18.3 / 20.5 ms (1.12x) |
| 3,000 + 3,000 (LFW-size)     | 0.25 / 0.69 ms (2.70x)    | 0.26 / 1.69 ms (6.49x) | 0.28 / 0.73 ms (2.58x) |

(weighted: 1.12x and 2.72x). EER and TAR@FAR have no scikit-learn function; they are read from the ROC
either way. The bootstrap does not build a ROC per replicate at all (`recognition.bootstrap`).
"""

from __future__ import annotations

import math

import numpy as np

# A FAR level is read from at least this many accepted impostors; below that one impostor more
# or less moves the estimate by > 10% of the level and the number is noise.
MIN_IMPOSTORS_AT_LEVEL = 10


def _as_arrays(scores, labels, sample_weight=None):
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape[0]} vs {labels.shape[0]}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    if labels.dtype != bool:
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError("labels must be bool or 0/1")
        labels = labels.astype(bool)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64).ravel()
        if sample_weight.shape != scores.shape:
            raise ValueError("sample_weight must have one entry per score")
    return scores, labels, sample_weight


def _need_both_classes(n_genuine: float, n_impostor: float) -> None:
    if n_genuine <= 0 or n_impostor <= 0:
        raise ValueError(
            f"need both genuine and impostor pairs (got {n_genuine:g} genuine, {n_impostor:g} impostor)"
        )


def roc_from_sorted(
    labels_sorted: np.ndarray, run_ends: np.ndarray, thresholds: np.ndarray, weight_sorted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC of pairs already sorted by descending score.

    `run_ends[j]` is the index (in sorted order) of the last pair whose score equals
    `thresholds[j]`, the j-th distinct score in descending order. Returns (far, tar, thresholds)
    with a leading (0, 0) point at threshold +inf. Raises ValueError without both classes.
    """
    if weight_sorted is None:
        tp = np.cumsum(labels_sorted)[run_ends].astype(np.float64)
        fp = (run_ends + 1) - tp
    else:
        cum_w = np.cumsum(weight_sorted)
        tp = np.cumsum(np.where(labels_sorted, weight_sorted, 0.0))[run_ends]
        fp = cum_w[run_ends] - tp
    n_genuine, n_impostor = tp[-1], fp[-1]
    _need_both_classes(n_genuine, n_impostor)
    far = np.concatenate(([0.0], fp / n_impostor))
    tar = np.concatenate(([0.0], tp / n_genuine))
    return far, tar, np.concatenate(([np.inf], thresholds))


def sort_for_roc(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, run_ends, distinct thresholds) for `roc_from_sorted`: descending scores, ties grouped."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    last_of_run = np.flatnonzero(np.diff(s) != 0)
    run_ends = np.concatenate((last_of_run, [s.size - 1])) if s.size else np.zeros(0, dtype=np.intp)
    return order, run_ends, s[run_ends]


def roc_curve(scores, labels, sample_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC: (far, tar, thresholds), one point per distinct score plus a leading (0, 0).

    `thresholds` is descending, starting at +inf (nothing accepted) and ending at the lowest
    score (everything accepted, so the last point is (1, 1)). Tied scores form one point.
    Matches `sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)` point for point
    (with weights: where every weight is positive; scikit-learn drops zero-weight pairs' points), and is
    1.1x (100k pairs) to 2.7x (6k pairs) faster than it (module docstring).
    """
    scores, labels, sample_weight = _as_arrays(scores, labels, sample_weight)
    order, run_ends, thresholds = sort_for_roc(scores)
    w = None if sample_weight is None else sample_weight[order]
    return roc_from_sorted(labels[order], run_ends, thresholds, w)


# --- metrics read from a ROC -------------------------------------------------------------------


def auc_from_roc(far: np.ndarray, tar: np.ndarray) -> float:
    """Area under the ROC by the trapezoid rule: tied scores count 1/2 (Mann-Whitney)."""
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1])) / 2.0)


def eer_from_roc(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """(EER, threshold) where FAR = FRR, linearly interpolated between the two ROC points that
    bracket the crossing. The threshold is interpolated the same way (when the crossing lies
    between +inf and the top score, the top score is returned)."""
    d = far + tar - 1.0  # FAR - FRR: -1 at the start, +1 at the end, non-decreasing
    k = int(np.argmax(d >= 0))
    if d[k] == 0 or k == 0:
        return float(far[k]), float(thresholds[k])
    t = -d[k - 1] / (d[k] - d[k - 1])
    rate = far[k - 1] + t * (far[k] - far[k - 1])
    lo, hi = thresholds[k], thresholds[k - 1]
    threshold = lo if not np.isfinite(hi) else hi + t * (lo - hi)
    return float(rate), float(threshold)


def _far_index(far: np.ndarray, level) -> np.ndarray:
    # Index of the last ROC point with FAR <= level: the most permissive threshold that keeps the
    # FAR within the level, hence the highest TAR among such thresholds (TAR is non-decreasing).
    # A tiny tolerance keeps e.g. 3/1000 from failing a 0.003 level through rounding.
    return np.searchsorted(far, np.asarray(level, dtype=np.float64) * (1 + 1e-12), side="right") - 1


def tar_at_far_from_roc(far: np.ndarray, tar: np.ndarray, level: float) -> float:
    return float(tar[_far_index(far, level)])


def tar_on_grid_from_roc(far: np.ndarray, tar: np.ndarray, far_grid) -> np.ndarray:
    """TAR at each FAR level of `far_grid`, read as in `tar_at_far` (step, never interpolated)."""
    return tar[_far_index(far, far_grid)]


# --- metrics on scores -------------------------------------------------------------------------


def auc(scores, labels, sample_weight=None) -> float:
    """Area under the ROC; equals `sklearn.metrics.roc_auc_score` (ties count 1/2) within 1.1e-16, 1.7x (100k pairs)
    to 6.5x (6k pairs) faster (module docstring)."""
    far, tar, _ = roc_curve(scores, labels, sample_weight)
    return auc_from_roc(far, tar)


def eer(scores, labels, sample_weight=None) -> tuple[float, float]:
    """(equal error rate, threshold): the interpolated crossing of FAR and FRR."""
    return eer_from_roc(*roc_curve(scores, labels, sample_weight))


def _format_far(level: float) -> str:
    exponent = math.log10(level) if level > 0 else 0.0
    if level > 0 and abs(exponent - round(exponent)) < 1e-9:
        return f"1e{int(round(exponent))}"
    return f"{level:g}"


def tar_at_far(scores, labels, far: float) -> dict:
    """TAR at the most permissive threshold whose FAR is still <= `far`.

    Returns dict(tar, threshold, far_achieved, impostors, resolvable, note). `resolvable` is
    False when fewer than 10 impostor scores can lie above a threshold at that level
    (far * impostors < 10): the level is then too fine for this many impostor pairs and the
    TAR is dominated by a handful of pairs; `note` says how many impostor pairs it needs.
    Threshold +inf (TAR 0) means no score-threshold reaches the level.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"FAR level must be in [0, 1], got {far}")
    scores, labels, _ = _as_arrays(scores, labels)
    return _tar_at_far_report(*roc_curve(scores, labels), int(np.count_nonzero(~labels)), far)


def _tar_at_far_report(fa, ta, thresholds, n_impostor: int, far: float) -> dict:
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"FAR level must be in [0, 1], got {far}")
    k = int(_far_index(fa, far))
    resolvable = far * n_impostor >= MIN_IMPOSTORS_AT_LEVEL * (1 - 1e-9)  # 1e-3 * 10,000 passes
    note = ""
    if not resolvable:
        needed = math.ceil(round(MIN_IMPOSTORS_AT_LEVEL / far, 6)) if far > 0 else math.inf
        needed_text = f"{needed:,}" if far > 0 else "infinitely many"
        note = f"FAR {_format_far(far)} needs ≥ {needed_text} impostor pairs; only {n_impostor:,} here"
    return {
        "tar": float(ta[k]),
        "threshold": float(thresholds[k]),
        "far_achieved": float(fa[k]),
        "impostors": n_impostor,
        "resolvable": bool(resolvable),
        "note": note,
    }


def roc_on_grid(scores, labels, far_grid) -> np.ndarray:
    """TAR at every FAR of a fixed grid (e.g. `np.logspace(-4, 0, 41)`), as `tar_at_far` reads it.

    Curves on a common grid can be averaged across seeds or bootstrap replicates (vertical
    averaging) to draw a ROC with a confidence band.
    """
    far, tar, _ = roc_curve(scores, labels)
    return tar_on_grid_from_roc(far, tar, np.asarray(far_grid, dtype=np.float64))


def accuracy_at_threshold(scores, labels, threshold: float) -> float:
    """Fraction of pairs decided correctly when `score >= threshold` means "same"."""
    scores, labels, _ = _as_arrays(scores, labels)
    if scores.size == 0:
        raise ValueError("no pairs")
    return float(np.mean((scores >= threshold) == labels))


def best_threshold(scores, labels) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy.

    Candidates are the midpoints between consecutive distinct scores, plus -inf (accept all)
    and +inf (reject all). Among equally accurate candidates the lowest threshold wins (as
    `np.argmax` over ascending thresholds does in insightface's `calculate_roc`).
    O(n log n): accuracies come from cumulative counts, not one pass per candidate.
    """
    scores, labels, _ = _as_arrays(scores, labels)
    if scores.size == 0:
        raise ValueError("no pairs")
    order = np.argsort(scores, kind="stable")
    s, lab = scores[order], labels[order]
    last_of_run = np.concatenate((np.flatnonzero(np.diff(s) != 0), [s.size - 1]))
    unique = s[last_of_run]
    # With the threshold just above unique[j], pairs with score <= unique[j] are rejected.
    rejected_genuine = np.cumsum(lab)[last_of_run]
    rejected_impostor = (last_of_run + 1) - rejected_genuine
    n_genuine = int(rejected_genuine[-1])
    # candidate c = 0: -inf, accepts all; c = j + 1: above unique[j] (midpoint, or +inf for the last)
    correct = np.concatenate(([n_genuine], rejected_impostor + (n_genuine - rejected_genuine)))
    thresholds = np.concatenate(([-np.inf], (unique[:-1] + unique[1:]) / 2.0, [np.inf]))
    best = int(np.argmax(correct))
    return float(thresholds[best]), float(correct[best] / s.size)


def summarise(scores, labels, far_levels=(1e-3, 1e-2)) -> dict:
    """dict(auc, eer, eer_threshold, genuine, impostors, tar_at_far={level: tar_at_far dict})."""
    scores, labels, _ = _as_arrays(scores, labels)
    far, tar, thresholds = roc_curve(scores, labels)
    e, e_thr = eer_from_roc(far, tar, thresholds)
    return {
        "auc": auc_from_roc(far, tar),
        "eer": e,
        "eer_threshold": e_thr,
        "genuine": int(np.count_nonzero(labels)),
        "impostors": int(np.count_nonzero(~labels)),
        "tar_at_far": {
            float(level): _tar_at_far_report(far, tar, thresholds, int(np.count_nonzero(~labels)), level)
            for level in far_levels
        },
    }
