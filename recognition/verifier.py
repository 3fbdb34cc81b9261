"""The face verifier: a timm backbone trained from scratch with a margin-softmax head.

    out = train_verifier(sources=[("runs/x/shards/originals", None)], cfg=cfg.verifier,
                         image_size=64, out_dir=Path("runs/x/verifiers/baseline/seed-0"), seed=0)
    # then recognition.embedding: load_verifier(out), embed(model, images), embed_store(model, store, split)

Files in `out_dir`:

    checkpoint.pt   full training state, rewritten atomically every `cfg.checkpoint_every`
                    steps and at the end: model, head, optimiser, step, loader position,
                    RNG states, loss history, config, sources
    verifier.pt     the finished model: weights, arch args, label count, label identities,
                    image size, config, sources (written once training completes)
    training.json   steps, budget, samples seen, images/s, loss curve, the training stream's
                    fingerprint, ... (on completion)

Trained once: an arm whose training stream has the fingerprint of another finished one (same samples in
the same order, same settings and seed) reuses that verifier (`twins`) instead of training it again.

Budget: `equal_steps` trains `cfg.steps` optimiser steps whatever the arm's size, so arms
compared against each other get identical compute and an identical learning-rate schedule;
`equal_epochs` trains `cfg.epochs * ceil(N / batch_size)` steps, N the arm's sample count.

Exact resume: every batch is full, drawn from one continuous stream that concatenates the
loader's epochs 0, 1, 2, ...; each epoch's order is a pure function of (seed, epoch,
loader workers) (pipeline.loader shuffles by (seed, epoch)), so the samples consumed
after `step` steps are the first `step * batch_size` of that stream: epoch
`step*B // N`, offset `step*B % N`. A resumed run restarts that epoch and discards
(decodes, then drops) the first `offset` samples. Flips are a pure function of
(seed, step), the learning rate a pure function of step (linear warmup, then cosine
decay to 0 over the total steps), and the weights, head, optimiser momentum and RNG
states come from the checkpoint, so a run interrupted at any point and resumed ends
with exactly the weights of an uninterrupted one (same device and thread count).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import faults
from pipeline.atomic import save_torch_atomic, write_json_atomic
from pipeline.config import VerifierConfig
from pipeline.layout import VERIFIER_RECORD, VERIFIER_WEIGHTS
from pipeline.precision import amp, autocast_dtype
from pipeline.training_keys import check_key, config_key, keyed_when_set
from recognition.backbones import make_backbone, small_input_for
from recognition.distributed import Distributed, barrier, cross_rank_batchnorm, mean_over_ranks
from recognition.heads import make_head

CHECKPOINT = "checkpoint.pt"
WEIGHTS = VERIFIER_WEIGHTS
TRAINING_JSON = VERIFIER_RECORD
# Config fields that do not change what one training run computes.
_NOT_TRAINING = {"threads", "arms", "seeds", "checkpoint_every", "reuse_from"}
# Fields added after checkpoints existed: they enter the key only when not at their default, so old runs still resume.
_KEYED_WHEN_SET = {"precision": "auto"}


class Verifier(nn.Module):
    """A registered backbone (`recognition.backbones`, random init — never pretrained) + Linear/BatchNorm1d
    embedding; forward returns L2-normalised embeddings (B x embedding_dim, fp32). `small_input` picks the
    stem (`backbones.small_input_for`)."""

    def __init__(self, arch: str = "resnet18", embedding_dim: int = 512, small_input: int = 0):
        super().__init__()
        self.arch_args = {"arch": arch, "embedding_dim": embedding_dim, "small_input": small_input}
        self.backbone = make_backbone(arch, small_input)
        self.embedding = nn.Sequential(
            nn.Linear(self.backbone.num_features, embedding_dim, bias=False),
            nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embedding(self.backbone(images)).float(), dim=1)


# ---------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------


def total_steps(cfg: VerifierConfig, num_samples: int) -> int:
    """Optimiser steps for an arm of `num_samples` training samples under cfg.budget."""
    if cfg.budget == "equal_steps":
        return cfg.steps
    return cfg.epochs * math.ceil(num_samples / cfg.batch_size)


def lr_at(step: int, *, base_lr: float, warmup: int, total: int) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to 0 at `total` (step counts from 0)."""
    warmup = min(warmup, total)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def flip_mask(seed: int, step: int, batch: int) -> torch.Tensor:
    """Which images of the batch at `step` are mirrored: a pure function of (seed, step)."""
    state = np.random.SeedSequence([seed, step, 0xF11B]).generate_state(2)
    g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.rand(batch, generator=g) < 0.5


def _training_key(cfg: VerifierConfig) -> dict:
    return keyed_when_set(config_key(cfg, skip=_NOT_TRAINING), _KEYED_WHEN_SET)


def _norm_sources(sources: Sequence[tuple]) -> list[list]:
    """[(path, kinds|None)] -> JSON-able [[path, [kinds]|None]] in a fixed form."""
    out = []
    for item in sources:
        path, kinds = item
        out.append([str(path), list(kinds) if kinds is not None else None])
    if not out:
        raise ValueError("train_verifier needs at least one source")
    return out


def _dataset(sources: list[list], *, seed: int, image_size: int, split: str | None = "train", shuffle: bool = True):
    from pipeline.loader import ShardImageDataset

    return ShardImageDataset([(p, tuple(k) if k is not None else None) for p, k in sources], split=split,
                             shuffle=shuffle, seed=seed, image_size=image_size)


def _stream(ds, start_sample: int, workers: int):
    """Samples (image, label) from the continuous epoch stream, starting at sample `start_sample`
    (None where an interleaved dataset leaves a position to another rank)."""
    from torch.utils.data import DataLoader

    n = len(ds)
    epoch, offset = divmod(start_sample, n)
    while True:
        ds.set_epoch(epoch)
        # A fresh (non-persistent) loader per epoch so set_epoch reaches the worker copies.
        items = DataLoader(ds, batch_size=None, num_workers=workers) if workers else ds
        for k, item in enumerate(items):
            if k >= offset:
                yield None if item is None else (item["image"], item["label"])
        epoch, offset = epoch + 1, 0


def _batches(ds, batch_size: int, start_step: int, workers: int):
    """Full global batches of the stream; with an interleaved dataset (distributed training) each batch holds only
    this rank's positions of the global batch."""
    stream = _stream(ds, start_step * batch_size, workers)
    while True:
        mine = [item for item in (next(stream) for _ in range(batch_size)) if item is not None]
        images, labels = zip(*mine)
        yield torch.stack(images), torch.tensor(labels, dtype=torch.int64)


class _Objective(nn.Module):
    """Model and margin head as one module, so DistributedDataParallel keeps both consistent across ranks."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, images: torch.Tensor, labels: torch.Tensor, autocast, device_type: str) -> torch.Tensor:
        with amp(autocast, device_type):
            emb = self.model(images)
        return F.cross_entropy(self.head(emb.float(), labels), labels)  # margins and softmax in fp32


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def train_verifier(
    *,
    sources: Sequence[tuple[str, tuple[str, ...] | None]],
    cfg: VerifierConfig,
    image_size: int,
    out_dir: Path,
    seed: int,
    device: str | None = None,
    workers: int = 0,
    progress: Callable[[str], None] = print,
    dist: Distributed | None = None,
    twins: Sequence[Path] = (),
) -> Path:
    """Train (or resume, or reuse) one verifier on the train split of `sources`; returns out_dir.

    twins: directories of other trainings (other arms, same seed) to reuse when one of them finished with the same
    settings on a training stream of the same fingerprint (`ShardImageDataset.fingerprint`: the same samples in
    the same order), which would train the very same verifier: it is copied, and its record says from where.

    dist: this process's rank in a torchrun job (recognition/train_ddp.py, process group already initialised).
    Every rank walks the same sample stream and takes its interleaved share of each global batch of
    `cfg.batch_size` (so the ranks together see exactly the single-process batches); model and head are
    wrapped together in DistributedDataParallel (their gradients are averaged, so every rank keeps the
    same weights; BatchNorm normalises over the global batch, `recognition.distributed`);
    rank 0 alone writes checkpoints and the finished model, which are the files the other stages read.

    sources: (shard store path, edit kinds to keep or None for all) per store, e.g.
    baseline [(originals, None)], aug-all [(originals, None), (aug-x, ("added", "removed")), ...].
    device: None picks CUDA when available. workers: loader processes (0 = decode in this
    process); part of the data order, so a resumed run uses the checkpoint's value.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    srcs = _norm_sources(sources)
    key = {"config": _training_key(cfg), "sources": srcs, "seed": seed, "image_size": image_size}
    world = dist.world_size if dist else 1
    if world > 1:  # not the single-process computation (BatchNorm per rank on CPUs): another training
        key["world_size"] = world
        if cfg.batch_size % world:
            raise ValueError(f"verifier.batch_size {cfg.batch_size} does not split over {world} processes")
        if workers:
            raise ValueError("distributed training decodes in each rank's own process (workers=0)")
    leader = dist is None or dist.leader
    tag = f"verifier[{out.name}]"

    # 0. Reuse a finished training with the same inputs; refuse to mix different ones.
    if (out / WEIGHTS).exists() and (out / TRAINING_JSON).exists():
        done = json.loads((out / TRAINING_JSON).read_text())
        check_key(out, done.get("key"), key, "It holds a verifier trained with other settings: use another out_dir, or delete it to retrain.")
        progress(f"{tag}: already trained ({out})")
        return out
    state = None
    if (out / CHECKPOINT).exists():
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
        check_key(out / CHECKPOINT, state["key"], key, "It is from a training with other settings: use another out_dir, or delete it to retrain.")
        workers = state["workers"]

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ds = _dataset(srcs, seed=seed, image_size=image_size)
    stream = (state or {}).get("stream") or ds.fingerprint()
    if state is None and world == 1:
        twin = _finished_twin(twins, key, stream)
        if twin is not None:
            return _reuse(twin, out, key, stream, progress, tag)
    if world > 1:
        ds.interleave(dist.rank, world)
    n = len(ds)
    if n < 2:
        raise ValueError(f"{srcs}: {n} training samples; need at least 2")
    total = total_steps(cfg, n)
    label_identities = sorted(ds.label_map, key=ds.label_map.get)

    # 1. Build model, head and optimiser (seeded init), then restore the checkpoint over them.
    torch.manual_seed(seed)
    small = small_input_for(image_size)
    model = Verifier(cfg.arch, cfg.embedding_dim, small).to(dev, memory_format=torch.channels_last)
    head = make_head(cfg.head, cfg.embedding_dim, ds.num_classes, scale=cfg.scale, margin=cfg.margin).to(dev)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    step, losses, resumed_from = 0, [], None
    if state is not None:
        if state["num_samples"] != n or state["label_identities"] != label_identities:
            raise ValueError(f"{out / CHECKPOINT}: the training data changed since the checkpoint "
                             f"({state['num_samples']} -> {n} samples)")
        model.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if dev.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], dev)
        step, losses, resumed_from = state["step"], list(state["losses"]), state["step"]
        progress(f"{tag}: resuming at step {step}/{total} (epoch {step * cfg.batch_size // n}, "
                 f"skipping {step * cfg.batch_size % n} consumed samples)")
    else:
        progress(f"{tag}: {n} samples, {ds.num_classes} identities, {total} steps ({cfg.budget}), "
                 f"{cfg.arch} {'small-input stem' if small else 'ImageNet stem'} at {image_size} px on {dev}")

    objective: nn.Module = _Objective(model, head)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # BatchNorm over the global batch: PyTorch's SyncBatchNorm on GPUs, ours on CPUs (it refuses CPU tensors)
        objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective) if dev.type == "cuda" else cross_rank_batchnorm(objective)
        objective = DistributedDataParallel(objective, device_ids=[dev.index] if dev.type == "cuda" else None)

    def checkpoint() -> None:
        if not leader:
            barrier(world)
            return
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}
        save_torch_atomic({
            "step": step, "model": model.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
            "schedule": {"kind": "warmup_cosine", "base_lr": cfg.lr, "warmup": cfg.warmup_steps, "total": total,
                         "lr": lr_at(max(step - 1, 0), base_lr=cfg.lr, warmup=cfg.warmup_steps, total=total)},
            "loader": {"epoch": step * cfg.batch_size // n, "offset": step * cfg.batch_size % n,
                       "samples_seen": step * cfg.batch_size},
            "rng": rng, "workers": workers, "num_samples": n, "label_identities": label_identities,
            "losses": losses, "key": key, "stream": stream, "arch": model.arch_args,
        }, out / CHECKPOINT)
        barrier(world)

    # 2. Train: one full batch per step from the continuous epoch stream.
    autocast = autocast_dtype(cfg.precision, dev)
    model.train()
    head.train()
    batches = _batches(ds, cfg.batch_size, step, workers)
    pending: list[torch.Tensor] = []
    log_every = max(1, min(50, total // 20))
    started, start_step = time.perf_counter(), step
    while step < total:
        images, labels = next(batches)
        flips = flip_mask(seed, step, cfg.batch_size)[dist.rank::world] if world > 1 else flip_mask(seed, step, len(images))
        images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
        images = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        labels = labels.to(dev, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, base_lr=cfg.lr, warmup=cfg.warmup_steps, total=total)
        loss = objective(images, labels, autocast, dev.type)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        pending.append(loss.detach())
        step += 1

        # 3. Log (syncing the device only here), checkpoint.
        if step % log_every == 0 or step == total:
            losses.extend(mean_over_ranks(torch.stack(pending), world).float().cpu().tolist())
            pending.clear()
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = (step - start_step) * cfg.batch_size / elapsed
            eta = (total - step) * cfg.batch_size / max(rate, 1e-9)
            progress(f"{tag}: step {step}/{total} loss {np.mean(losses[-log_every:]):.4f} "
                     f"lr {lr_at(step - 1, base_lr=cfg.lr, warmup=cfg.warmup_steps, total=total):.4g} "
                     f"{rate:.1f} img/s eta {eta / 60:.1f} min")
        if step % cfg.checkpoint_every == 0 or step == total:
            if pending:
                losses.extend(mean_over_ranks(torch.stack(pending), world).float().cpu().tolist())
                pending.clear()
            checkpoint()
        faults.point("verifier-step")
    wall = time.perf_counter() - started
    if not leader:  # rank 0 writes the finished model, which is what the other stages read
        barrier(world)
        return out

    # 4. The finished model and its record.
    save_torch_atomic({
        "model": model.state_dict(), "arch": model.arch_args, "num_classes": ds.num_classes,
        "label_identities": label_identities, "image_size": image_size, "config": json.loads(cfg.model_dump_json()),
        "sources": srcs, "seed": seed,
    }, out / WEIGHTS)
    samples = total * cfg.batch_size
    write_json_atomic({
        "steps": total, "budget": cfg.budget, "epochs": cfg.epochs if cfg.budget == "equal_epochs" else None,
        "batch_size": cfg.batch_size, "num_samples": n, "num_classes": ds.num_classes,
        "samples_seen": samples, "epochs_seen": samples / n, "image_size": image_size, "small_input": small,
        "device": str(dev), "workers": workers, "resumed_from_step": resumed_from,
        "wall_s_this_session": wall, "images_per_s": (total - start_step) * cfg.batch_size / max(wall, 1e-9),
        "final_loss": float(np.mean(losses[-max(1, total // 20):])), "loss_curve": losses,
        "sources": srcs, "seed": seed, "config": json.loads(cfg.model_dump_json()), "key": key, "stream": stream,
    }, out / TRAINING_JSON)
    progress(f"{tag}: done, {total} steps, {samples} samples ({samples / n:.2f} epochs) -> {out / WEIGHTS}")
    barrier(world)
    return out


def _finished_twin(twins: Sequence[Path], key: dict, stream: str) -> Path | None:
    """The first of `twins` that finished a training with `key` apart from its sources, on a stream of fingerprint `stream`."""
    same = {k: v for k, v in key.items() if k != "sources"}
    for twin in twins:
        record = Path(twin) / TRAINING_JSON
        if not ((Path(twin) / WEIGHTS).exists() and record.exists()):
            continue
        done = json.loads(record.read_text())
        if done.get("stream") == stream and {k: v for k, v in (done.get("key") or {}).items() if k != "sources"} == same:
            return Path(twin)
    return None


def _reuse(twin: Path, out: Path, key: dict, stream: str, progress: Callable[[str], None], tag: str) -> Path:
    """Copy the twin's finished verifier into `out`, with a record under this training's own key that names the twin."""
    import shutil

    shutil.copyfile(twin / WEIGHTS, out / f"{WEIGHTS}.tmp")
    (out / f"{WEIGHTS}.tmp").replace(out / WEIGHTS)
    record = json.loads((twin / TRAINING_JSON).read_text())
    write_json_atomic({**record, "key": key, "sources": key["sources"], "stream": stream, "reused_from": str(twin),
                       "wall_s_this_session": 0.0}, out / TRAINING_JSON)
    progress(f"{tag}: the same training stream as {twin} (fingerprint {stream[:12]}): its verifier is reused, not trained again")
    return out
