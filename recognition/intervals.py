"""Intervals, verdicts and the smallest detectable difference for verification metrics.

An arm is trained with k seeds and every seed is scored on the same test pairs. A metric's
uncertainty has two sources, combined explicitly:

* **test sampling**: which test identities happened to be drawn. Estimated by the identity-cluster
  bootstrap (`recognition.bootstrap`) with *all* seeds kept in every replicate: SE_test is the
  standard deviation over replicates of the mean over seeds (of the metric, or of the paired
  difference between two arms on the same replicate);
* **training randomness**: which seeds were run. Estimated from the k per-seed values on the full
  test set: s^2 is their sample variance (per-seed differences for a comparison), and the mean over
  k seeds has variance s^2 / k.

SE^2 = SE_test^2 + s^2 / k, and the interval is the estimate +- c * SE, where c accounts for s^2
being estimated from only k - 1 degrees of freedom (`Calibration`: between the normal quantile when
test sampling dominates and beyond t(k - 1)'s when the seeds do). With a single seed, s^2 cannot be
estimated: the interval covers test sampling only, and no verdict is called ("too few seeds").

Why not the percentile bootstrap over seeds: re-drawing 3 seeds with replacement shrinks their
variance to 2/3 and reads a normal-like quantile where t with 2 degrees of freedom belongs; a null
simulation (tests/recognition/test_intervals.py) found that "95%" interval calling a false gain or
loss in about 22% of experiments. This one holds its level in the same simulation.

A difference's p-value is read from |d| / SE with the same calibration, so multiple-comparison
corrections (Holm) work at any level, unlike a bootstrap p-value whose resolution is 1 / replicates.
The minimal detectable difference (80% power) is reported beside every comparison (`mdd`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from recognition.bootstrap import PairScores, cluster_index, replicate_values, resolve_metric
from recognition.metrics import MIN_IMPOSTORS_AT_LEVEL, tar_on_grid_from_roc

GAIN, LOSS, NONE = "gain", "loss", "no measurable difference"
TOO_FEW_SEEDS = "too few seeds for a verdict"
NOT_RESOLVABLE = "not resolvable"


@dataclass(frozen=True)
class Estimate:
    """One arm's metric: the mean over seeds with its interval and the parts of its standard error."""

    metric: str
    mean: float
    ci_low: float
    ci_high: float
    se: float
    se_test: float
    seed_sd: float | None  # sample standard deviation of the per-seed values (None for one seed)
    critical: float  # the multiplier of SE in the interval (see Calibration)
    seed_values: list[float]
    confidence: float
    replicates: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """A - B of a metric between two arms on the same test pairs, with its interval, p-value and verdict."""

    metric: str
    diff_mean: float
    ci_low: float
    ci_high: float
    se: float
    se_test: float
    seed_sd: float | None
    critical: float
    p_value: float | None
    verdict: str
    mdd: float  # the smallest |A - B| this comparison detects with 80% power at its confidence
    a_mean: float
    b_mean: float
    higher_is_better: bool
    seeds: int
    confidence: float
    replicates: int
    resolvable: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


_CHI2_POINTS = 400  # quantile points of the chi-square distribution the calibration averages over
SEED_VARIANCE_BOUND = 0.95  # the seed variance is taken at this upper confidence limit (see Calibration)


class Calibration:
    """How |d| / SE is read when SE^2 = test_var + seed_var_of_mean and the seed part has only k - 1
    degrees of freedom (the test part, from many identities, is treated as known).

    For a true ratio r = test_var / seed_var_of_mean, P(|d| / SE > c) under no difference is
    E[2 P(Z > c sqrt((r + X / nu) / (r + 1)))] with X ~ chi2(nu), nu = k - 1. r is unknown and is taken
    at its lower `SEED_VARIANCE_BOUND` limit (the seed variance at its upper limit): the reading is then
    conservative when a few seeds happen to agree, and close to the normal one when the test part
    dominates. (Welch-Satterthwaite degrees of freedom were tried first: in the null simulation they
    called 6.8-7.5% false gains or losses at a nominal 5%, because a seed variance underestimated by
    chance also inflates the degrees of freedom; t(k - 1) for everything held the level but lost
    half the power when the test part dominates.)"""

    def __init__(self, test_var: float, seed_var_of_mean: float | None, k: int):
        self.scale = None  # None: the normal reading (one seed: test sampling only; or no seed variance)
        if seed_var_of_mean is not None and seed_var_of_mean > 0 and k >= 2:
            nu = k - 1
            seed_upper = seed_var_of_mean * nu / float(stats.chi2.ppf(1 - SEED_VARIANCE_BOUND, nu))
            r = test_var / seed_upper
            x = stats.chi2.ppf((np.arange(_CHI2_POINTS) + 0.5) / _CHI2_POINTS, nu)
            self.scale = np.sqrt((r + x / nu) / (r + 1))

    def p_value(self, ratio: float) -> float:
        """Two-sided p-value of |d| / SE = ratio."""
        if self.scale is None:
            return float(2 * stats.norm.sf(ratio))
        return float(np.mean(2 * stats.norm.sf(ratio * self.scale)))

    def critical(self, confidence: float = 0.95) -> float:
        """c with p_value(c) = 1 - confidence: the interval is d +- c * SE."""
        alpha = 1 - confidence
        z = float(stats.norm.ppf(1 - alpha / 2))
        if self.scale is None:
            return z
        high = z
        while self.p_value(high) > alpha:
            high *= 2
        return float(optimize.brentq(lambda c: self.p_value(c) - alpha, z * 0.5, high))


def mdd(se: float, critical: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Minimal detectable difference: (c + c * z_power / z_conf) * SE, the power quantile scaled like the
    critical value c (with the normal reading, c = z_conf: the textbook (z_conf + z_power) * SE)."""
    z_conf = stats.norm.ppf(1 - (1 - confidence) / 2)
    return float((critical + critical * stats.norm.ppf(power) / z_conf) * se)


def _valid(values: np.ndarray) -> np.ndarray:
    return ~np.isnan(values.reshape(values.shape[0], -1)).any(axis=1)


def estimate(per_seed: Sequence[PairScores], metric, n: int = 1000, seed: int = 0, confidence: float = 0.95,
             bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """The metric of one arm (mean over its seeds) with a two-component interval (module docstring)."""
    m = resolve_metric(metric)
    full, reps = replicate_values(per_seed, m.read, n, seed, cluster_index([r.groups for r in per_seed]))
    return estimate_from(m.name, full, reps, confidence, bounds)


def estimate_from(name: str, full: np.ndarray, reps: np.ndarray, confidence: float = 0.95,
                  bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """`estimate` from precomputed values: `full` (seeds,) on all pairs, `reps` (replicates, seeds)."""
    reps_mean = reps.mean(axis=1)
    valid = _valid(reps_mean)
    if not valid.any():
        raise ValueError("no bootstrap replicate had both genuine and impostor pairs")
    k = full.shape[0]
    se_test = float(np.std(reps_mean[valid], ddof=1)) if valid.sum() > 1 else 0.0
    seed_sd = float(np.std(full, ddof=1)) if k > 1 else None
    seed_var = None if seed_sd is None else seed_sd ** 2 / k
    se = math.sqrt(se_test ** 2 + (seed_var or 0.0))
    c = Calibration(se_test ** 2, seed_var, k).critical(confidence)
    mean = float(full.mean())
    return Estimate(name, mean, max(bounds[0], mean - c * se), min(bounds[1], mean + c * se), se, se_test, seed_sd, c,
                    [float(v) for v in full], confidence, int(valid.sum()))


def paired_difference(arm_a: Sequence[PairScores], arm_b: Sequence[PairScores], metric, n: int = 1000, seed: int = 0,
                      confidence: float = 0.95, power: float = 0.8, resolvable: bool = True) -> Difference:
    """A - B (seed i of A paired with seed i of B, the same identity draws for both); see the module docstring.

    `resolvable=False` (a FAR level too fine for the impostors there are) gives the numbers but the
    verdict "not resolvable" and no p-value, so it is never counted among the calls."""
    if len(arm_a) != len(arm_b):
        raise ValueError(f"paired seeds: arm A has {len(arm_a)} seeds, arm B {len(arm_b)}")
    m = resolve_metric(metric)
    clusters = cluster_index([r.groups for r in (*arm_a, *arm_b)])
    a_full, a_reps = replicate_values(arm_a, m.read, n, seed, clusters)
    b_full, b_reps = replicate_values(arm_b, m.read, n, seed, clusters)
    return difference_from(m.name, m.higher_is_better, a_full, a_reps, b_full, b_reps, confidence, power, resolvable)


def difference_from(name: str, higher_is_better: bool, a_full: np.ndarray, a_reps: np.ndarray, b_full: np.ndarray,
                    b_reps: np.ndarray, confidence: float = 0.95, power: float = 0.8, resolvable: bool = True) -> Difference:
    """`paired_difference` from precomputed values of both arms on the same replicate draws."""
    if a_full.shape != b_full.shape:
        raise ValueError(f"paired seeds: arm A has {a_full.shape[0]} seeds, arm B {b_full.shape[0]}")
    d_reps = a_reps.mean(axis=1) - b_reps.mean(axis=1)
    valid = _valid(d_reps)
    if not valid.any():
        raise ValueError("no bootstrap replicate had both genuine and impostor pairs")
    k = a_full.shape[0]
    per_seed = a_full - b_full
    se_test = float(np.std(d_reps[valid], ddof=1)) if valid.sum() > 1 else 0.0
    seed_sd = float(np.std(per_seed, ddof=1)) if k > 1 else None
    seed_var = None if seed_sd is None else seed_sd ** 2 / k
    se = math.sqrt(se_test ** 2 + (seed_var or 0.0))
    calibration = Calibration(se_test ** 2, seed_var, k)
    c = calibration.critical(confidence)
    d = float(per_seed.mean())
    low, high = d - c * se, d + c * se
    p = None
    if not resolvable:
        verdict = NOT_RESOLVABLE
    elif k < 2:
        verdict = TOO_FEW_SEEDS
    else:
        p = calibration.p_value(abs(d) / se) if se > 0 else (0.0 if d != 0 else 1.0)
        verdict = call(low, high, higher_is_better)
    return Difference(name, d, low, high, se, se_test, seed_sd, c, p, verdict, mdd(se, c, confidence, power),
                      float(a_full.mean()), float(b_full.mean()), higher_is_better, k, confidence, int(valid.sum()),
                      resolvable)


@dataclass(frozen=True)
class Fraction:
    """(E - C) / (P - C): how much of the positive control's gain over the no-edit control an edited arm captures."""

    metric: str
    fraction: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def fraction_from(name: str, e: tuple[np.ndarray, np.ndarray], c: tuple[np.ndarray, np.ndarray],
                  p: tuple[np.ndarray, np.ndarray], positive: Difference, confidence: float = 0.95) -> Fraction:
    """The fraction of the positive control's gain, with a delta-method interval over both uncertainty
    sources (test sampling: the covariance over bootstrap replicates; training: over seeds). Undefined when the
    positive control itself shows no measurable gain over the no-edit control (`positive`; the evaluation passes
    its Holm-adjusted verdict)."""
    if positive.verdict != GAIN:
        return Fraction(name, None, None, None, None,
                        f"not defined: the positive control's difference from the no-edit control is '{positive.verdict}'")
    a_seed, b_seed = e[0] - c[0], p[0] - c[0]
    a_rep, b_rep = e[1].mean(axis=1) - c[1].mean(axis=1), p[1].mean(axis=1) - c[1].mean(axis=1)
    ok = ~(np.isnan(a_rep) | np.isnan(b_rep))
    a, b = float(a_seed.mean()), float(b_seed.mean())
    f = a / b
    k = a_seed.size
    test_cov = np.cov(a_rep[ok], b_rep[ok]) if ok.sum() > 2 else np.zeros((2, 2))
    seed_cov = np.cov(a_seed, b_seed) / k if k > 1 else None
    def var(cov):
        return (cov[0, 0] - 2 * f * cov[0, 1] + f * f * cov[1, 1]) / (b * b)
    test_var = max(var(test_cov), 0.0)
    seed_var = max(var(seed_cov), 0.0) if seed_cov is not None else None
    se = math.sqrt(test_var + (seed_var or 0.0))
    crit = Calibration(test_var, seed_var, k).critical(confidence)
    return Fraction(name, f, f - crit * se, f + crit * se, se, "")


def call(ci_low: float, ci_high: float, higher_is_better: bool = True) -> str:
    """'gain' / 'loss' only when the interval of (A - B) excludes zero, else 'no measurable difference'."""
    if ci_low > 0:
        return GAIN if higher_is_better else LOSS
    if ci_high < 0:
        return LOSS if higher_is_better else GAIN
    return NONE


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None and is not counted in the family)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def adjusted_verdict(difference: Difference, adjusted_p: float | None, alpha: float = 0.05) -> str:
    """The verdict after a multiple-comparison correction: a call only where the adjusted p < alpha."""
    if adjusted_p is None:
        return difference.verdict
    return p_verdict(difference.diff_mean, difference.higher_is_better, adjusted_p, alpha)


def p_verdict(diff_mean: float, higher_is_better: bool, p: float, alpha: float = 0.05) -> str:
    """Gain or loss where p < alpha (the direction from the difference's sign), else no measurable difference."""
    if p >= alpha:
        return NONE
    return GAIN if (diff_mean > 0) == bool(higher_is_better) else LOSS


def resolvable(metric, impostors: int) -> bool:
    """A TAR@FAR level needs >= MIN_IMPOSTORS_AT_LEVEL impostor pairs above its threshold."""
    m = resolve_metric(metric)
    return m.far_level is None or m.far_level * impostors >= MIN_IMPOSTORS_AT_LEVEL * (1 - 1e-9)


def roc_band(per_seed: Sequence[PairScores], far_grid, n: int = 1000, seed: int = 0, confidence: float = 0.95
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tar_mean, tar_low, tar_high) on `far_grid`: the mean over seeds with a pointwise two-component band."""
    far_grid = np.asarray(far_grid, dtype=np.float64)
    full, reps = replicate_values(per_seed, lambda f, t, thr: tar_on_grid_from_roc(f, t, far_grid), n, seed)
    mean_reps = reps.mean(axis=1)
    valid = _valid(mean_reps)
    k = len(per_seed)
    se_test = np.std(mean_reps[valid], axis=0, ddof=1) if valid.sum() > 1 else np.zeros(far_grid.size)
    seed_var = np.var(full, axis=0, ddof=1) / k if k > 1 else np.zeros(far_grid.size)
    se = np.sqrt(se_test ** 2 + seed_var)
    critical = np.array([Calibration(t ** 2, s if k > 1 else None, k).critical(confidence) for t, s in zip(se_test, seed_var)])
    half = critical * se
    mean = full.mean(axis=0)
    return mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


# --- planning: how many seeds or identities would a difference need? -------------------------------


@dataclass(frozen=True)
class VarianceParts:
    """What a finished run says about the noise of a paired difference on one protocol and metric."""

    se_test: float  # test-sampling SE of the difference with this run's identities (taken as independent of the
                    # seed count: averaging more seeds only lowers it, so projections are conservative)
    seed_sd: float  # SD of one seed's difference (training randomness)
    identities: int
    seeds: int
    source: str = "baseline seeds paired against each other"

    def parts(self, seeds: int, identities: int) -> tuple[float, float]:
        """(test variance, seed variance of the mean) with other seed / identity counts (test variance ~ 1 / identities)."""
        return self.se_test ** 2 * self.identities / identities, self.seed_sd ** 2 / seeds

    def se(self, seeds: int, identities: int) -> float:
        return math.sqrt(sum(self.parts(seeds, identities)))

    def mdd(self, seeds: int, identities: int, confidence: float = 0.95, power: float = 0.8) -> float:
        """The minimal detectable difference of that design, read with the critical value its intervals will use
        (`Calibration`: few seeds widen it beyond the normal quantile)."""
        test_var, seed_var = self.parts(seeds, identities)
        c = Calibration(test_var, seed_var, seeds).critical(confidence)
        return mdd(math.sqrt(test_var + seed_var), c, confidence, power)

    def seeds_needed(self, difference: float, identities: int | None = None, confidence: float = 0.95,
                     power: float = 0.8, most: int = 1000) -> int | None:
        """The fewest seeds that detect `difference` (None: not within `most`, or the test set alone is too noisy)."""
        identities = identities or self.identities
        return _fewest(lambda k: self.mdd(k, identities, confidence, power) <= abs(difference), 2, most)

    def identities_needed(self, difference: float, seeds: int | None = None, confidence: float = 0.95,
                          power: float = 0.8, most: int = 10_000_000) -> int | None:
        """The fewest test identities that detect `difference` with `seeds` (None: the seeds' noise alone is too large)."""
        seeds = seeds or self.seeds
        return _fewest(lambda n: self.mdd(seeds, n, confidence, power) <= abs(difference), 2, most)


def _fewest(ok, low: int, high: int) -> int | None:
    """The smallest n in [low, high] with ok(n), for ok monotone in n; None when ok(high) fails."""
    if not ok(high):
        return None
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid + 1, high)
    return low


def null_variance_from_baseline(per_seed: Sequence[PairScores], metric, n: int = 200, seed: int = 0) -> VarianceParts:
    """Noise of a paired difference between two arms with no true difference, estimated from a finished
    baseline alone: its seeds paired against each other (seed i vs seed j) are exactly such a comparison."""
    if len(per_seed) < 2:
        raise ValueError("planning needs a baseline with at least 2 seeds (their spread is the training noise)")
    m = resolve_metric(metric)
    clusters = cluster_index([r.groups for r in per_seed])
    full, reps = replicate_values(per_seed, m.read, n, seed, clusters)
    k = len(per_seed)
    # one seed's difference from another: variance 2 * (seed variance of the metric)
    seed_sd = float(np.sqrt(2.0) * np.std(full, ddof=1))
    pair_se = []
    for i in range(k):
        for j in range(i + 1, k):
            d = reps[:, i] - reps[:, j]
            d = d[~np.isnan(d)]
            pair_se.append(np.std(d, ddof=1))
    # the test-sampling variance of a difference between two single models; a mean over k seeds
    # per arm averages part of it away, so this is conservative for k > 1
    se_test = float(np.sqrt(np.mean(np.square(pair_se))))
    return VarianceParts(se_test=se_test, seed_sd=seed_sd, identities=int(clusters.size), seeds=k)


def variance_from_comparison(arm_a: Sequence[PairScores], arm_b: Sequence[PairScores], metric, n: int = 200,
                             seed: int = 0) -> VarianceParts:
    """Noise of a paired difference measured on a finished comparison (e.g. a positive control against its
    no-edit control): the spread of its same-seed differences and its test-sampling SE.

    Arms trained with the same seed share their initialisation, so their per-seed differences vary less than
    two baseline seeds do: planning from the baseline alone overstates the seed part (by 2-9x on the evidence
    run's crossing pairs). Plan from a comparison of the kind you will run when one has finished."""
    if len(arm_a) < 2:
        raise ValueError("planning needs a comparison with at least 2 seeds (the spread of its differences is the training noise)")
    d = paired_difference(arm_a, arm_b, metric, n=n, seed=seed)
    clusters = cluster_index([r.groups for r in (*arm_a, *arm_b)])
    return VarianceParts(se_test=d.se_test, seed_sd=float(d.seed_sd), identities=int(clusters.size), seeds=d.seeds,
                         source="same-seed differences of a finished comparison")
