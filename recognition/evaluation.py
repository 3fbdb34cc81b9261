"""Scoring every trained arm on every protocol, and the comparisons that answer the question -> results.json.

For each pair set of each protocol (`recognition.protocols`) and each arm, every seed's verifier scores
the same pairs. From those scores:

* each arm's metrics (AUC, EER, TAR at the configured FARs) with two-component intervals
  (`recognition.intervals`: identity-cluster bootstrap + seed variance), and its ROC with a band;
* **control-relative verdicts**, the headline: every edited arm (`aug-<attribute>[@<editor>]`,
  `aug-all[@<editor>]`) against its **no-edit control** (`aug-<attribute>@identity`: the same rows and
  passes, no edit), when the run has it;
* each augmented arm against the baseline, shown beside;
* the **fraction of the positive control's gain** an edited arm captures, where the run has the
  positive control (`aug-<attribute>@counterfactual`, the true edit): (E - C) / (P - C);
* multiple comparisons: Holm-adjusted p-values and verdicts within each family (edits vs. their
  control; arms vs. the baseline), beside the uncorrected ones;
* for every comparison, the minimal detectable difference (`mdd`) at the run's confidence and power.

A TAR at a FAR level the impostor count cannot resolve is reported but "not resolvable" and left out of
every family. A pair set with too few genuine or impostor pairs is listed with a note and not scored.
Bootstrap replicates are computed once per arm and pair set (one ROC per replicate gives every metric).
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from pipeline.atomic import write_text_atomic
from pipeline.config import RunConfig, split_arm
from pipeline.layout import VERIFIER_RECORD, RunLayout

FAR_GRID = np.logspace(-4, 0, 41)
CONTROL_EDITOR, POSITIVE_EDITOR = "identity", "counterfactual"
MIN_PAIRS = 2  # genuine and impostor pairs a pair set needs to be scored at all


def metric_names(ev) -> list[str]:
    return ["auc", "eer"] + [f"tar@far={level:g}" for level in ev.far_levels]


def control_of(arm: str, cfg: RunConfig) -> str | None:
    """The no-edit control of an edited arm (same attribute, same budget), if it is one of the run's arms."""
    base, editor = split_arm(arm)
    if base == "baseline" or (editor or cfg.editor.name) in (CONTROL_EDITOR,):
        return None
    control = f"{base}@{CONTROL_EDITOR}"
    return control if control in cfg.verifier.arms else None


def positive_of(arm: str, cfg: RunConfig) -> str | None:
    """The positive control (the true counterfactual) of an edited arm, if it is one of the run's arms."""
    base, editor = split_arm(arm)
    if base == "baseline" or (editor or cfg.editor.name) in (CONTROL_EDITOR, POSITIVE_EDITOR):
        return None
    positive = f"{base}@{POSITIVE_EDITOR}"
    return positive if positive in cfg.verifier.arms else None


def test_data(cfg: RunConfig, emb: dict):
    """The run's test data for the protocols, in the order of the embedding caches."""
    from pipeline.ingest import lfw_attributes_file, resolve_sources
    from pipeline.lfw import LFW
    from pipeline.lfw_attributes import read_lfw_attributes
    from pipeline.shards import ShardStore
    from recognition.protocols import TestData

    sources = resolve_sources(cfg, progress=lambda m: None)
    lfw = LFW.open(sources.lfw_dir)
    table = ShardStore(RunLayout(cfg).originals).read_table(columns=["sample_id", "attributes"], filter_split="test")
    attributes_of = dict(zip(table["sample_id"].to_pylist(), table["attributes"].to_pylist()))
    attributes = np.asarray([attributes_of[s] for s in emb["celeba_ids"].tolist()], dtype=np.int8)
    attributes_file = lfw_attributes_file(cfg, sources)
    return TestData(celeba_ids=emb["celeba_ids"], celeba_identity=emb["celeba_identity"], celeba_attributes=attributes,
                    lfw_ids=emb["lfw_ids"], lfw_pairs=lfw.pairs,
                    lfw_attributes=read_lfw_attributes(attributes_file) if attributes_file else None)


def pair_sets(cfg: RunConfig, emb: dict) -> tuple[dict, dict]:
    """(scorable pair sets by name, the description of every pair set including those with too few pairs)."""
    from recognition.protocols import PROTOCOLS

    data = test_data(cfg, emb)
    usable, described = {}, {}
    for protocol in cfg.evaluation.protocols:
        for name, ps in PROTOCOLS.get(protocol)(cfg, data).pair_sets().items():
            groups = None if ps.groups is None else np.asarray(ps.groups)
            info = {"protocol": protocol, "test_set": ps.test_set, "description": ps.description, "genuine": ps.genuine,
                    "impostors": ps.impostors, "identities": int(np.unique(groups).size) if groups is not None else None,
                    "folds": None if ps.folds is None else int(np.unique(ps.folds).size)}
            if ps.genuine < MIN_PAIRS or ps.impostors < MIN_PAIRS:
                info["note"] = f"too few pairs to read any figure ({ps.genuine} genuine, {ps.impostors} impostor)"
            else:
                usable[name] = ps
            described[name] = info
    return usable, described


def scored_pairs(ps, emb: dict):
    """One pair set scored with one verifier's test embeddings, as the bootstrap reads it (pairs without an identity
    cluster are their own clusters)."""
    from recognition.bootstrap import PairScores

    scores = ps.scores(emb[f"{ps.test_set}_emb"])
    return PairScores(scores, ps.labels, np.arange(scores.size) if ps.groups is None else ps.groups)


def _reader(metrics, far_grid):
    """One function reading every metric and the ROC on the grid from one (weighted) ROC."""
    from recognition.metrics import tar_on_grid_from_roc

    def read(far, tar, thresholds):
        return np.concatenate([[m.read(far, tar, thresholds) for m in metrics], tar_on_grid_from_roc(far, tar, far_grid)])
    return read


def evaluate_run(cfg: RunConfig, *, device: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Every arm on every protocol, the comparisons and verdicts (module docstring) -> results.json."""
    from recognition.bootstrap import cluster_index, replicate_values, resolve_metric
    from recognition.experiment import embed_tests
    from recognition.intervals import difference_from, estimate_from, fraction_from, resolvable
    from recognition.protocols import lfw_tenfold

    layout = RunLayout(cfg)
    ev = cfg.evaluation
    names = metric_names(ev)
    metrics = [resolve_metric(m) for m in names]
    read = _reader(metrics, FAR_GRID)
    arms, seeds = list(cfg.verifier.arms), list(cfg.verifier.seeds)
    sets = described = None
    values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}  # arm -> pair set -> (full, replicates)
    arm_results: dict = {}
    for arm in arms:
        runs: dict[str, list] = {}
        tenfold: dict[str, list] = {}
        training = []
        for seed in seeds:
            progress(f"evaluating {arm}/seed-{seed}")
            emb = embed_tests(cfg, arm, seed, device=device)
            if sets is None:  # the same pairs for every arm and seed
                sets, described = pair_sets(cfg, emb)
            for name, ps in sets.items():
                scored = scored_pairs(ps, emb)
                runs.setdefault(name, []).append(scored)
                if ps.folds is not None:
                    tenfold.setdefault(name, []).append(lfw_tenfold(scored.scores, ps.labels, ps.folds))
            info = layout.verifier_dir(arm, seed) / VERIFIER_RECORD
            training.append(json.loads(info.read_text()) if info.exists() else None)
        values[arm] = {}
        arm_results[arm] = {"training": training, "protocols": {}}
        for name, per_seed in runs.items():
            clusters = cluster_index([r.groups for r in per_seed])
            full, reps = replicate_values(per_seed, read, ev.bootstrap, cfg.seed, clusters)
            if np.isnan(reps.reshape(reps.shape[0], -1)).all(axis=1).all():
                described[name]["note"] = "no bootstrap replicate held both genuine and impostor pairs: too few pairs to read"
                continue
            values[arm][name] = (full, reps)
            k = len(metrics)
            band = [estimate_from("tar", full[:, k + j], reps[:, :, k + j], ev.confidence) for j in range(FAR_GRID.size)]
            entry = {"metrics": {m: estimate_from(m, full[:, j], reps[:, :, j], ev.confidence).as_dict() for j, m in enumerate(names)},
                     "roc": {"tar_mean": [b.mean for b in band], "tar_low": [b.ci_low for b in band], "tar_high": [b.ci_high for b in band]}}
            if name in tenfold:
                accs = tenfold[name]
                entry["tenfold"] = {"per_seed": accs, "accuracy_mean": float(np.mean([a["accuracy_mean"] for a in accs])),
                                    "accuracy_std_over_folds": [a["accuracy_std"] for a in accs]}
            arm_results[arm]["protocols"][name] = entry
    for name, info in described.items():
        info["resolvable"] = {m: resolvable(m, info["impostors"]) for m in names}

    def compare(a: str, b: str, kind: str) -> dict:
        out = {}
        for name in values[a]:
            out[name] = {}
            for j, m in enumerate(metrics):
                (af, ar), (bf, br) = values[a][name], values[b][name]
                d = difference_from(m.name, m.higher_is_better, af[:, j], ar[:, :, j], bf[:, j], br[:, :, j], ev.confidence,
                                    ev.power, described[name]["resolvable"][m.name])
                out[name][m.name] = {**d.as_dict(), "arm": a, "reference": b, "kind": kind}
        return out

    vs_baseline = {arm: compare(arm, "baseline", "vs baseline") for arm in arms if arm != "baseline" and "baseline" in arms}
    vs_control = {arm: compare(arm, control_of(arm, cfg), "vs no-edit control") for arm in arms if control_of(arm, cfg)}
    families = {"edits vs no-edit control": vs_control, "arms vs baseline": vs_baseline}
    adjust(families)
    fractions = {}  # defined where the positive control's gain is measurable after Holm, as the headline reads it
    for arm in arms:
        positive, control = positive_of(arm, cfg), control_of(arm, cfg)
        if positive and control:
            fractions[arm] = {name: {m.name: fraction_from(m.name, *[(values[x][name][0][:, j], values[x][name][1][:, :, j])
                                                                        for x in (arm, control, positive)],
                                                            _adjusted(vs_control[positive][name][m.name]), ev.confidence).as_dict()
                                     for j, m in enumerate(metrics)} for name in values[arm]}
    results = {
        "budget": cfg.verifier.budget, "steps": cfg.verifier.steps if cfg.verifier.budget == "equal_steps" else None,
        "epochs": cfg.verifier.epochs if cfg.verifier.budget == "equal_epochs" else None,
        "seeds": seeds, "confidence": ev.confidence, "power": ev.power, "bootstrap": ev.bootstrap, "far_grid": FAR_GRID.tolist(),
        "method": ("intervals: identity-cluster bootstrap over the test identities with every seed kept, plus the seeds' "
                   "variance, read with a critical value calibrated for k - 1 seed degrees of freedom "
                   "(recognition/intervals.py); verdicts: the interval excludes zero"),
        "multiple_comparisons": {"method": "Holm", "alpha": 1 - ev.confidence,
                                 "families": {f: sum(d["p_value"] is not None for a in fam.values() for s in a.values() for d in s.values())
                                              for f, fam in families.items()}},
        "protocols": described, "arms": arm_results, "differences": vs_baseline, "control_differences": vs_control,
        "positive_control_fraction": fractions,
    }
    results = _jsonable(results)
    write_text_atomic(json.dumps(results, indent=2) + "\n", layout.results)
    return results


def _difference(d: dict):
    from recognition.intervals import Difference

    return Difference(**{k: v for k, v in d.items() if k in Difference.__dataclass_fields__})


def _adjusted(d: dict):
    """A comparison as a `Difference` whose verdict is the Holm-adjusted one."""
    return _difference({**d, "verdict": d["adjusted_verdict"]})


def adjust(families: dict[str, dict]) -> None:
    """Add Holm-adjusted p-values and verdicts (in place) within each family of comparisons."""
    from recognition.intervals import adjusted_verdict, holm

    for family in families.values():
        cells = [d for by_set in family.values() for by_metric in by_set.values() for d in by_metric.values()]
        for d, p in zip(cells, holm([d["p_value"] for d in cells])):
            d["adjusted_p"] = p
            d["adjusted_verdict"] = adjusted_verdict(_difference(d), p)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def arm_runs(cfg: RunConfig, arm: str, *, device: str | None = None) -> dict[str, list]:
    """Every scorable pair set -> one PairScores per seed of `arm` (whose verifiers must be trained)."""
    from recognition.experiment import embed_tests

    runs: dict[str, list] = {}
    sets = None
    for seed in cfg.verifier.seeds:
        emb = embed_tests(cfg, arm, seed, device=device)
        if sets is None:
            sets, _ = pair_sets(cfg, emb)
        for name, ps in sets.items():
            runs.setdefault(name, []).append(scored_pairs(ps, emb))
    return runs


def plan(cfg: RunConfig, difference: float, metric: str = "auc", pair_sets: list[str] | None = None,
         compare: tuple[str, str] | None = None, seeds: int | None = None, identities: int | None = None,
         progress: Callable[[str], None] = print) -> list[dict]:
    """Before an experiment: how small a difference a design detects, and how many seeds or test identities a given
    `difference` would need (95% confidence, the configured power).

    The noise comes from a finished baseline (>= 2 seeds, its seeds paired against each other), or, with
    `compare=(arm_a, arm_b)`, from a finished comparison of the kind planned (its same-seed differences: the
    better guide, since arms sharing a seed differ less than two baseline seeds). `seeds` / `identities`
    set the design to size (default: this run's)."""
    from recognition.intervals import null_variance_from_baseline, variance_from_comparison

    ev = cfg.evaluation
    n = min(ev.bootstrap, 300)
    if compare:
        runs_a, runs_b = arm_runs(cfg, compare[0]), arm_runs(cfg, compare[1])
        noise = {name: variance_from_comparison(runs_a[name], runs_b[name], metric, n=n, seed=cfg.seed) for name in runs_a
                 if not pair_sets or name in pair_sets}
    else:
        noise = {name: null_variance_from_baseline(per_seed, metric, n=n, seed=cfg.seed)
                 for name, per_seed in arm_runs(cfg, "baseline").items() if not pair_sets or name in pair_sets}
    out = []
    for name, parts in noise.items():
        progress(f"planning on {name}")
        k, ids = seeds or parts.seeds, identities or parts.identities
        out.append({"pair_set": name, "metric": metric, "identities": parts.identities, "seeds": parts.seeds,
                    "source": parts.source, "mdd_now": parts.mdd(parts.seeds, parts.identities, ev.confidence, ev.power),
                    "design_seeds": k, "design_identities": ids, "mdd_design": parts.mdd(k, ids, ev.confidence, ev.power),
                    "difference": difference,
                    "seeds_needed": parts.seeds_needed(difference, ids, confidence=ev.confidence, power=ev.power),
                    "identities_needed": parts.identities_needed(difference, k, confidence=ev.confidence, power=ev.power),
                    "se_test": parts.se_test, "seed_sd": parts.seed_sd})
    return out
