"""The verification experiment: train every arm with every seed, score them on every protocol, compare.

    <run>/verifiers/<arm>/seed-<s>/     verifier.pt, checkpoint.pt, training.json, embeddings.npz
    <run>/results.json                  every metric per arm and protocol with 95% intervals, and each
                                        augmented arm's paired difference from the baseline

Arms (the paper's section 4.3 comparison, plus aug-all):
    baseline            the train originals
    aug-<attribute>     the aug-<attribute> shard dataset: original + added + removed of every train image
    aug-all             originals + the added/removed samples of every attribute's dataset
All arms get the same optimiser steps and schedule by default (verifier.budget = equal_steps).

Protocols (`recognition.protocols`, `evaluation.protocols`): the CelebA-format test identities (one
seeded target image per identity, the rest queries, every query against every target) and LFW's
10-fold pairs protocol by default. Intervals come from a hierarchical bootstrap over identities
(CelebA) or pairs (LFW) and over seeds (`recognition.statistics`); only a difference whose interval
excludes zero is called a gain or loss.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.atomic import write_text_atomic
from pipeline.config import RunConfig, split_arm
from pipeline.layout import EMBEDDINGS, VERIFIER_RECORD, VERIFIER_WEIGHTS, RunLayout

FAR_GRID = np.logspace(-4, 0, 41)


def arm_sources(cfg: RunConfig, arm: str) -> list[tuple[str, tuple[str, ...] | None]]:
    """The shard datasets (and edit kinds) an arm trains on; `aug-...@<editor>` uses that editor's edits."""
    layout = RunLayout(cfg)
    base, editor = split_arm(arm)
    if base == "baseline":
        return [(layout.originals, None)]
    if base == "aug-all":
        return [(layout.originals, None)] + [(layout.augmented(a, editor), ("added", "removed")) for a in cfg.editor.attributes]
    attribute = base.removeprefix("aug-")
    if attribute not in cfg.editor.attributes:
        raise ValueError(f"arm {arm!r} needs attribute {attribute!r}, which is not in editor.attributes {list(cfg.editor.attributes)}")
    return [(layout.augmented(attribute, editor), None)]


def train_arm(cfg: RunConfig, arm: str, seed: int, *, device: str | None = None, progress: Callable[[str], None] = print) -> Path:
    """Train (or resume, or reuse) one arm with one seed, after checking train/test identities are disjoint."""
    from recognition.verifier import train_verifier

    check_identities(cfg, arm)
    out = RunLayout(cfg).verifier_dir(arm, seed)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    return train_verifier(sources=arm_sources(cfg, arm), cfg=cfg.verifier, image_size=cfg.data.image_size,
                          out_dir=out, seed=seed, device=device, progress=lambda m: progress(f"{arm}/seed-{seed}: {m}"))


def check_identities(cfg: RunConfig, arm: str) -> None:
    """Train/test identity overlap is an error, checked on every run (not trusted from ingest)."""
    import pyarrow.compute as pc

    from pipeline.shards import ShardStore
    from recognition.protocols import check_disjoint

    test = ShardStore(RunLayout(cfg).originals).read_table(columns=["identity"], filter_split="test")
    test_ids = set(test.column("identity").to_pylist())
    train_ids: set[int] = set()
    for path, _ in arm_sources(cfg, arm):
        table = ShardStore(path).read_table(columns=["identity", "split"])
        train_ids |= set(table.filter(pc.equal(table.column("split"), "train")).column("identity").to_pylist())
    check_disjoint(train_ids, test_ids, f"arm {arm}: train vs. CelebA-format test identities")


def embed_tests(cfg: RunConfig, arm: str, seed: int, *, device: str | None = None) -> dict:
    """Flip-averaged embeddings of the CelebA-format test originals and the LFW images, cached beside the model."""
    from recognition.verifier import embed_store, load_verifier

    layout = RunLayout(cfg)
    out = layout.verifier_dir(arm, seed)
    cache = out / EMBEDDINGS
    if cache.exists() and cache.stat().st_mtime >= (out / VERIFIER_WEIGHTS).stat().st_mtime:
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in data.files}
    model = load_verifier(out, device)
    c_ids, c_identity, c_emb = embed_store(model, layout.originals, split="test", edit_kinds=("original",))
    l_ids, _, l_emb = embed_store(model, layout.lfw, split=None)
    order = np.argsort(np.asarray(c_ids))  # stored order is not guaranteed; sort so every arm sees the same rows
    result = {"celeba_ids": np.asarray(c_ids)[order], "celeba_identity": c_identity[order], "celeba_emb": c_emb[order],
              "lfw_ids": np.asarray(l_ids), "lfw_emb": l_emb}
    tmp = out / "embeddings.tmp.npz"
    np.savez(tmp, **result)
    tmp.replace(cache)
    return result


def test_data(cfg: RunConfig, emb: dict):
    """The run's test data for the protocols, in the order of the embedding caches."""
    from pipeline.ingest import resolve_sources
    from pipeline.lfw import LFW
    from recognition.protocols import TestData

    lfw = LFW.open(resolve_sources(cfg, progress=lambda m: None).lfw_dir)
    return TestData(celeba_ids=emb["celeba_ids"], celeba_identity=emb["celeba_identity"], celeba_attributes=None,
                    lfw_ids=emb["lfw_ids"], lfw_pairs=lfw.pairs)


def evaluate_run(cfg: RunConfig, *, device: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Metrics with intervals for every trained arm on every protocol, and paired differences from the baseline
    -> results.json."""
    from recognition.metrics import summarise
    from recognition.protocols import PROTOCOLS, lfw_tenfold
    from recognition.statistics import bootstrap_metric, paired_difference, roc_band

    layout = RunLayout(cfg)
    ev = cfg.evaluation
    results: dict = {"budget": cfg.verifier.budget, "steps": cfg.verifier.steps if cfg.verifier.budget == "equal_steps" else None,
                     "epochs": cfg.verifier.epochs if cfg.verifier.budget == "equal_epochs" else None,
                     "seeds": list(cfg.verifier.seeds), "confidence": ev.confidence, "bootstrap": ev.bootstrap,
                     "far_grid": FAR_GRID.tolist(), "arms": {}, "differences": {}}
    pair_sets = None
    per_arm: dict[str, dict[str, list]] = {}
    for arm in cfg.verifier.arms:
        per_arm[arm] = {}
        folds_acc, training = {}, []
        for seed in cfg.verifier.seeds:
            progress(f"evaluating {arm}/seed-{seed}")
            emb = embed_tests(cfg, arm, seed, device=device)
            if pair_sets is None:  # the same pairs for every arm and seed
                data = test_data(cfg, emb)
                pair_sets = {name: ps for protocol in ev.protocols for name, ps in PROTOCOLS.get(protocol)(cfg, data).pair_sets().items()}
            for name, ps in pair_sets.items():
                scores = ps.scores(emb[f"{ps.test_set}_emb"])
                per_arm[arm].setdefault(name, []).append((scores, ps.labels, ps.groups))
                if ps.folds is not None:
                    folds_acc.setdefault(name, []).append(lfw_tenfold(scores, ps.labels, ps.folds))
            info = layout.verifier_dir(arm, seed) / VERIFIER_RECORD
            training.append(json.loads(info.read_text()) if info.exists() else None)
        arm_result: dict = {"training": training}
        for name, accs in folds_acc.items():
            arm_result[f"{name}_10fold"] = {
                "per_seed": accs,
                "accuracy_mean": float(np.mean([a["accuracy_mean"] for a in accs])),
                "accuracy_std_over_folds": [a["accuracy_std"] for a in accs],
            }
        for name, runs in per_arm[arm].items():
            first = summarise(runs[0][0], runs[0][1], ev.far_levels)
            metrics = {m: bootstrap_metric(runs, m, n=ev.bootstrap, seed=cfg.seed, confidence=ev.confidence) for m in metric_names(ev)}
            tar, low, high = roc_band(runs, FAR_GRID, n=ev.bootstrap, seed=cfg.seed, confidence=ev.confidence)
            arm_result[name] = {
                "genuine": first["genuine"], "impostors": first["impostors"],
                "resolvable": {str(k): v["resolvable"] for k, v in first["tar_at_far"].items()},
                "notes": [v["note"] for v in first["tar_at_far"].values() if v.get("note")],
                "metrics": metrics, "roc": {"tar_mean": tar.tolist(), "tar_low": low.tolist(), "tar_high": high.tolist()},
            }
        results["arms"][arm] = arm_result
    if "baseline" in per_arm:
        for arm in per_arm:
            if arm == "baseline":
                continue
            results["differences"][arm] = {
                name: {m: paired_difference(per_arm[arm][name], per_arm["baseline"][name], m, n=ev.bootstrap,
                                            seed=cfg.seed, confidence=ev.confidence) for m in metric_names(ev)}
                for name in per_arm[arm]
            }
    results = _jsonable(results)
    write_text_atomic(json.dumps(results, indent=2) + "\n", layout.results)
    return results


def run_experiment(cfg: RunConfig, *, device: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Train every arm x seed (resuming/reusing what exists), then evaluate."""
    started = time.perf_counter()
    for arm in cfg.verifier.arms:
        for seed in cfg.verifier.seeds:
            train_arm(cfg, arm, seed, device=device, progress=progress)
    progress(f"verifiers trained in {time.perf_counter() - started:.0f} s")
    return evaluate_run(cfg, device=device, progress=progress)


def metric_names(ev) -> list[str]:
    return ["auc", "eer"] + [f"tar@far={level:g}" for level in ev.far_levels]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
