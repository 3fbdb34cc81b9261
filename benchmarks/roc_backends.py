"""Hand-written ROC/AUC/EER/TAR@FAR (recognition/metrics.py, recognition/bootstrap.py) against scikit-learn's.

Which one should the project use? scikit-learn wherever it is not measurably slower; the vectorised NumPy
code where it is. Measured here, on realistic sizes (default: 3,000 genuine + 100,000 impostor pairs from
1,000 test identities, cosine-like float32 scores):

  (a) one ROC of all pairs, unweighted and weighted: `metrics.roc_curve` vs
      `sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)`;
  (b) AUC: `metrics.auc` vs `sklearn.metrics.roc_auc_score`;
  (c) every metric the evaluation reads from one ROC (AUC, EER, TAR at 1e-3 / 1e-2, the TAR on the
      41-point FAR grid), with the ROC from either backend (scikit-learn has no EER or TAR@FAR);
  (d) one bootstrap replicate as `recognition.evaluation` computes it: identity counts -> the reduced
      weighted ROC (`bootstrap.PreparedRun.roc`, no sort) -> every metric, against what scikit-learn
      would need for the same replicate: the pair weights c_a * c_b and a weighted `roc_curve`
      (a sort per replicate) -> every metric.

Every case also reports the largest absolute difference between the two backends' numbers, so a switch
keeps results identical. Timings are medians of --repeats calls (the machine's load average is recorded;
on a shared machine compare the ratio, not the absolute times).

    .venv/bin/python benchmarks/roc_backends.py --out docs/bench_roc_backends_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recognition import metrics as hand  # noqa: E402
from recognition.bootstrap import AUC, EER, PairScores, PreparedRun, cluster_index, draw_counts, tar_at_far_metric  # noqa: E402

FAR_GRID = np.logspace(-4, 0, 41)
READERS = [AUC, EER, tar_at_far_metric(1e-3), tar_at_far_metric(1e-2)]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def realistic_pairs(genuine: int, impostors: int, identities: int, seed: int = 0) -> PairScores:
    """Cosine-like similarities of a decent verifier, rounded through float32 like the embeddings' scores, with the
    identities of both images of every pair (genuine pairs within one identity)."""
    rng = np.random.default_rng(seed)
    gen = np.clip(rng.normal(0.62, 0.14, genuine), -1, 1)
    imp = np.clip(rng.normal(0.08, 0.11, impostors), -1, 1)
    scores = np.concatenate((gen, imp)).astype(np.float32).astype(np.float64)
    labels = np.concatenate((np.ones(genuine, bool), np.zeros(impostors, bool)))
    g_id = rng.integers(0, identities, genuine)
    a = rng.integers(0, identities, impostors)
    b = (a + rng.integers(1, identities, impostors)) % identities
    groups = np.concatenate((np.stack([g_id, g_id], 1), np.stack([a, b], 1)))
    return PairScores(scores, labels, groups)


def read_all(far, tar, thr) -> np.ndarray:
    return np.concatenate([[m.read(far, tar, thr) for m in READERS], hand.tar_on_grid_from_roc(far, tar, FAR_GRID)])


def compare(name: str, hand_fn, sk_fn, repeats: int, same) -> dict:
    h, s = hand_fn(), sk_fn()
    out = {"hand_s": median_seconds(hand_fn, repeats), "sklearn_s": median_seconds(sk_fn, repeats),
           "max_abs_difference": same(h, s)}
    out["sklearn_over_hand"] = out["sklearn_s"] / out["hand_s"]
    print(f"{name:<44} hand {1e3 * out['hand_s']:9.2f} ms   sklearn {1e3 * out['sklearn_s']:9.2f} ms   "
          f"ratio {out['sklearn_over_hand']:5.2f}   max |diff| {out['max_abs_difference']:.2e}", flush=True)
    return out


def _maxdiff(a, b) -> float:
    if isinstance(a, tuple):
        if any(np.shape(x) != np.shape(y) for x, y in zip(a, b)):
            return float("inf")
        return max(_maxdiff(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a, float), np.asarray(b, float)
    finite = np.isfinite(a) & np.isfinite(b)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    return float(np.max(np.abs(a[finite] - b[finite]), initial=0.0))


def bench_size(genuine: int, impostors: int, identities: int, repeats: int, replicates: int) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    data = realistic_pairs(genuine, impostors, identities)
    scores, labels = data.scores, data.labels
    # Positive weights: scikit-learn drops zero-weighted pairs from its ROC (fewer points, same metrics), so only
    # positive ones give point-for-point comparable curves; the bootstrap case (d) has zero counts and compares metrics.
    weights = np.random.default_rng(1).integers(1, 4, scores.size).astype(np.float64)
    print(f"-- {genuine:,} genuine + {impostors:,} impostor pairs, {identities:,} identities", flush=True)
    out = {"genuine": genuine, "impostors": impostors, "identities": identities}
    out["roc_curve"] = compare("roc_curve", lambda: hand.roc_curve(scores, labels),
                               lambda: roc_curve(labels, scores, drop_intermediate=False), repeats, _maxdiff)
    out["roc_curve_weighted"] = compare("roc_curve, sample_weight", lambda: hand.roc_curve(scores, labels, weights),
                                        lambda: roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False),
                                        repeats, _maxdiff)
    out["auc"] = compare("auc", lambda: hand.auc(scores, labels), lambda: roc_auc_score(labels, scores), repeats, _maxdiff)
    out["auc_weighted"] = compare("auc, sample_weight", lambda: hand.auc(scores, labels, weights),
                                  lambda: roc_auc_score(labels, scores, sample_weight=weights), repeats, _maxdiff)
    out["all_metrics_one_roc"] = compare("AUC+EER+TAR@FAR+grid from one ROC", lambda: read_all(*hand.roc_curve(scores, labels)),
                                         lambda: read_all(*roc_curve(labels, scores, drop_intermediate=False)), repeats, _maxdiff)

    # (d) the bootstrap: one replicate = identity counts -> weighted ROC -> every metric
    clusters = cluster_index([data.groups])
    prepared = PreparedRun(data, clusters)
    pos = np.searchsorted(clusters, data.groups)
    second = np.where(pos[:, 1] == pos[:, 0], clusters.size, pos[:, 1])  # a pair within one identity counts c_a times
    draws = [draw_counts(clusters.size, r, 0) for r in range(replicates)]

    def hand_reps():
        return np.stack([read_all(*prepared.roc(c)) for c in draws])

    def sk_reps():
        rows = []
        for c in draws:
            full = np.concatenate((c, [1])).astype(np.float64)
            rows.append(read_all(*roc_curve(labels, scores, sample_weight=full[pos[:, 0]] * full[second], drop_intermediate=False)))
        return np.stack(rows)

    reps = compare(f"bootstrap, {replicates} replicates", hand_reps, sk_reps, max(1, repeats // 5), _maxdiff)
    reps["per_replicate_hand_s"] = reps["hand_s"] / replicates
    reps["per_replicate_sklearn_s"] = reps["sklearn_s"] / replicates
    out["bootstrap_replicates"] = {**reps, "replicates": replicates}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["3000:100000:1000"],
                    help="genuine:impostors:identities (default 3000:100000:1000)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--replicates", type=int, default=50, help="bootstrap replicates per timed call")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import sklearn

    result = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "numpy": np.__version__,
                          "sklearn": sklearn.__version__, "python": platform.python_version()},
              "repeats": args.repeats, "sizes": []}
    for spec in args.sizes:
        genuine, impostors, identities = (int(x) for x in spec.split(":"))
        result["sizes"].append(bench_size(genuine, impostors, identities, args.repeats, args.replicates))
    result["machine"]["load_average_at_end"] = os.getloadavg()
    # The rule: scikit-learn wherever it is not slower (within 5%) at every measured size; else the hand-written code.
    cases = [k for k, v in result["sizes"][0].items() if isinstance(v, dict)]
    worst = {case: max(size[case]["sklearn_over_hand"] for size in result["sizes"]) for case in cases}
    result["decision"] = {case: {"worst_sklearn_over_hand": w, "use": "sklearn" if w <= 1.05 else "hand-written"}
                          for case, w in worst.items()}
    for case, d in result["decision"].items():
        print(f"{case:<26} worst ratio {d['worst_sklearn_over_hand']:5.2f} -> {d['use']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
