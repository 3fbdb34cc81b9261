"""The verification experiment: train every arm with every seed and embed the test images
(`recognition.evaluation` then scores them on every protocol and compares the arms).

    <run>/verifiers/<arm>/seed-<s>/     verifier.pt, checkpoint.pt, training.json, embeddings.npz

Arms (the paper's section 4.3 comparison, plus aug-all):
    baseline            the train originals
    aug-<attribute>     the aug-<attribute> shard dataset: original + added + removed of every train image
    aug-all             originals + the added/removed samples of every attribute's dataset
All arms get the same optimiser steps and schedule by default (verifier.budget = equal_steps).

Controls: `aug-<attribute>@identity` (the no-edit control: the same rows and passes, no edit) and, on
the synthetic benchmark, `aug-<attribute>@counterfactual` (the positive control: the true edit).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.config import RunConfig, split_arm
from pipeline.layout import EMBEDDINGS, VERIFIER_WEIGHTS, RunLayout


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


def train_arm(cfg: RunConfig, arm: str, seed: int, *, device: str | None = None, progress: Callable[[str], None] = print,
              dist=None) -> Path:
    """Train (or resume, or reuse) one arm with one seed, after checking train/test identities are disjoint.
    `dist` (`verifier.Distributed`): this process's rank in a torchrun job (recognition/train_ddp.py)."""
    from recognition.verifier import train_verifier

    check_identities(cfg, arm)
    out = RunLayout(cfg).verifier_dir(arm, seed)
    out.mkdir(parents=True, exist_ok=True)
    if dist is None or dist.leader:
        cfg.save(out)
    # an arm whose training stream equals another's (the no-edit control of two attributes) is trained once
    # and a finished run named in verifier.reuse_from lends any verifier trained on the same stream with this seed
    twins = [RunLayout(cfg).verifier_dir(other, seed) for other in cfg.verifier.arms if other != arm]
    twins += [d for run in cfg.verifier.reuse_from for d in sorted((Path(run) / "verifiers").glob(f"*/seed-{seed}"))]
    return train_verifier(sources=arm_sources(cfg, arm), cfg=cfg.verifier, image_size=cfg.data.image_size,
                          out_dir=out, seed=seed, device=device, progress=lambda m: progress(f"{arm}/seed-{seed}: {m}"),
                          dist=dist, twins=twins)


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
    """Flip-averaged embeddings of the CelebA-format test originals and the LFW images, cached beside the model.
    The cache holds the `evaluation.precision` it was made with (a cache without one was made by `auto`, the only
    setting before it existed). A verifier equal byte for byte to another arm's of this run (a no-edit control
    shared by several attributes) takes that arm's embeddings: same weights, same test images."""
    out = RunLayout(cfg).verifier_dir(arm, seed)
    precision = cfg.evaluation.precision
    cached = _fresh_embeddings(out, precision) or _twin_embeddings(cfg, arm, seed, precision)
    if cached is not None:
        return cached
    result = embed_test_sets(cfg, out, precision, device=device)
    _save_embeddings(out, result, precision)
    return result


def embed_test_sets(cfg: RunConfig, verifier_dir: Path, precision: str, *, device: str | None = None) -> dict:
    """The embeddings `embed_tests` caches, computed (no cache read or written)."""
    from recognition.embedding import embed_store, load_verifier

    layout = RunLayout(cfg)
    model = load_verifier(verifier_dir, device)
    c_ids, c_identity, c_emb = embed_store(model, layout.originals, split="test", edit_kinds=("original",), precision=precision)
    l_ids, _, l_emb = embed_store(model, layout.lfw, split=None, precision=precision)
    order = np.argsort(np.asarray(c_ids))  # stored order is not guaranteed; sort so every arm sees the same rows
    return {"celeba_ids": np.asarray(c_ids)[order], "celeba_identity": c_identity[order], "celeba_emb": c_emb[order],
            "lfw_ids": np.asarray(l_ids), "lfw_emb": l_emb}


def _fresh_embeddings(out: Path, precision: str) -> dict | None:
    cache = out / EMBEDDINGS
    if not (cache.exists() and cache.stat().st_mtime >= (out / VERIFIER_WEIGHTS).stat().st_mtime):
        return None
    data = np.load(cache, allow_pickle=False)
    made_with = str(data["precision"]) if "precision" in data.files else "auto"
    return {k: data[k] for k in data.files if k != "precision"} if made_with == precision else None


def _twin_embeddings(cfg: RunConfig, arm: str, seed: int, precision: str) -> dict | None:
    import hashlib

    layout = RunLayout(cfg)
    out = layout.verifier_dir(arm, seed)
    digest = lambda d: hashlib.sha256((d / VERIFIER_WEIGHTS).read_bytes()).hexdigest()
    mine = None
    for other in cfg.verifier.arms:
        twin = layout.verifier_dir(other, seed)
        if other == arm or not (twin / VERIFIER_WEIGHTS).exists() or (found := _fresh_embeddings(twin, precision)) is None:
            continue
        mine = mine or digest(out)
        if digest(twin) == mine:
            _save_embeddings(out, found, precision)
            return found
    return None


def _save_embeddings(out: Path, result: dict, precision: str) -> None:
    tmp = out / "embeddings.tmp.npz"
    np.savez(tmp, **result, precision=np.asarray(precision))
    tmp.replace(out / EMBEDDINGS)


def run_experiment(cfg: RunConfig, *, device: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Train every arm x seed (resuming/reusing what exists), then evaluate."""
    started = time.perf_counter()
    for arm in cfg.verifier.arms:
        for seed in cfg.verifier.seeds:
            train_arm(cfg, arm, seed, device=device, progress=progress)
    progress(f"verifiers trained in {time.perf_counter() - started:.0f} s")
    from recognition.evaluation import evaluate_run

    return evaluate_run(cfg, device=device, progress=progress)
