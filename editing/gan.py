"""The training loop every GAN editor shares.

A GAN editor family subclasses `GanTrainer` and supplies only what is its own:

    build()            -> its networks and optimisers (named, so they are checkpointed by name)
    iteration(draw)    -> one training iteration; returns the losses to log
    sample_rows(x, c)  -> rows of the training sample grid (input | edited | mask | residual ...)
    weights()          -> what its `Editor.load` needs beyond {arch, attribute, image_size}

The loop owns everything else, identically for every family: decoding the train-split
originals into memory, seeded (optionally attribute-balanced) batches, exact resume from
`checkpoint.pt` (modules, optimisers, RNG, step, loss history, selection state), refusing to
resume or reuse work done under a different training key, progress lines with rate and ETA,
sample grids, `losses.jsonl`, choosing the checkpoint on validation faces (`editor.select_every`,
`editing.selection`), and the final `editor.pt` + `editor.json` (with the checkpoint id that
augmentation records in every shard row).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch

from editing.base import Editor, Trainer, file_digest
from editing.grids import sample_grid
from editing.originals import Originals, load_originals
from pipeline.atomic import save_torch_atomic, write_json_atomic
from pipeline.images import batch_to_model_range
from pipeline.layout import ALL, EDITOR_JSON, SELECTION_JSON
from pipeline.precision import autocast_dtype, inference_dtype
from pipeline.training_keys import check_key, config_key, keyed_when_set

CHECKPOINT = "checkpoint.pt"  # full training state, for resume
WEIGHTS = "editor.pt"  # generator weights + architecture, for inference

# Fields added after runs had been keyed without them: at their default they are left out of the training
# key, so existing checkpoints stay valid; set to anything else they are keyed.
KEYED_WHEN_SET = {"cls_on_edits": 0.0, "cls_on_edits_warmup": 0, "d_noise": 0.0}  # SaganParams
KEYED_WHEN_SET_EDITOR = {"select_every": 0, "patience": 0, "valid_images": 400, "select_mask_target": None}  # EditorConfig
SELECTION_DIR = "selection"  # the candidate and the best checkpoint's weights while training with selection

Draw = Callable[[], "tuple[torch.Tensor, torch.Tensor]"]


def training_key(cfg, image_size: int, editor: str, multi_attribute: bool = False) -> dict:
    """What determines a training run's result; a resume or reuse must match it (iterations may grow).
    The attribute list matters only to a multi-attribute model (one directory per attribute otherwise)."""
    skip = {"iterations", "checkpoint_every", "sample_every", "threads"} | (set() if multi_attribute else {"attributes"})
    key = {"image_size": image_size, **config_key(cfg, skip=skip)}
    if editor != "sagan":  # SaGAN keys predate the field; keeping them lets old runs resume
        key["editor"] = editor
    keyed_when_set(key.get("sagan", {}), KEYED_WHEN_SET)
    keyed_when_set(key, KEYED_WHEN_SET_EDITOR)
    return key


class GanEditor(Editor):
    """Inference side every GAN editor shares: one attribute, networks held as bf16 weights (not autocast:
    no per-call casts) where the device has native bf16 -- measured on SaGAN at the paper's 128 px, batch 16,
    on a 2-core AVX-512-BF16 CPU: fp32 15 img/s, autocast bf16 26, bf16 weights 30 (benchmarks/sagan_speed.py)
    -- and channels_last on GPUs only (it slows these convs on the CPU)."""

    title: ClassVar[str] = "editor"  # how error messages name the method

    def __init__(self, attribute: str, image_size: int, checkpoint_id: str, device: torch.device, precision: str = "auto"):
        super().__init__((attribute,), checkpoint_id)
        self.dtype = inference_dtype(precision, device)
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.image_size = image_size
        self.device = device
        self.precision = precision

    def place(self, network: torch.nn.Module) -> torch.nn.Module:
        """A network ready for inference on this editor's device, dtype and memory format."""
        return network.eval().to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)

    @classmethod
    def read_weights(cls, directory: str | Path) -> tuple[dict, str]:
        """(the trainer's editor.pt, its checkpoint id); a directory without one is an error naming the path."""
        path = Path(directory) / WEIGHTS
        if not path.exists():
            raise FileNotFoundError(f"{path}: no trained {cls.title} here (train it with `faceaug editors train`)")
        return torch.load(path, map_location="cpu", weights_only=True), file_digest(path)

    @classmethod
    def load_network(cls, directory: str | Path, network_class: type[torch.nn.Module], key: str,
                     device: str | torch.device = "cpu", precision: str = "auto"):
        """The editor of a trainer that saved one network (`state[key]`, built as network_class(**state["arch"]))."""
        state, checkpoint_id = cls.read_weights(directory)
        network = network_class(**state["arch"])
        network.load_state_dict(state[key])
        return cls(network, state["attribute"], state["image_size"], checkpoint_id, torch.device(device), precision)

    def batch(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The images on the device in the network's dtype and format; one target per image or an error."""
        if images.shape[0] != target.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {target.shape[0]} targets")
        return images.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)


class GanTrainer(Trainer):
    """Shared loop; subclasses set `editor_name`/`editor_version`/`editor_class` and implement the four hooks."""

    editor_name: ClassVar[str]
    editor_version: ClassVar[str] = "1"
    editor_class: ClassVar[type[GanEditor] | None] = None  # what `Editor.load` builds: validation scores it
    requires_balance: ClassVar[bool] = False  # True: every batch is half with, half without the attribute
    supports_selection: ClassVar[bool] = True

    # ---- hooks -------------------------------------------------------------------------------
    def build(self) -> tuple[dict[str, Any], dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        """(arch, modules, optimisers), modules initialised and on `self.device`."""
        raise NotImplementedError

    def iteration(self, draw: Draw, rng: torch.Generator, autocast: torch.dtype | None) -> dict[str, float]:
        """One training iteration on batches from `draw()` ((images in [-1, 1], 0/1 labels))."""
        raise NotImplementedError

    def sample_rows(self, fixed: torch.Tensor, c_org: torch.Tensor) -> list[list[torch.Tensor]]:
        """Rows of the sample grid for these fixed faces (modules are in eval mode, no grad)."""
        raise NotImplementedError

    def weights(self) -> dict[str, Any]:
        """The state dicts `Editor.load` needs."""
        raise NotImplementedError

    def labels_for(self, originals: Originals) -> torch.Tensor:
        """The labels `draw()` returns with each batch: N 0/1 values of the edited attribute by default
        (a multi-attribute editor returns N x K)."""
        return originals.labels(self.attribute)

    def balance_on(self, labels: torch.Tensor) -> torch.Tensor:
        """The N 0/1 values that balanced batches are balanced on."""
        return labels

    def prepare(self, originals: Originals, labels: torch.Tensor) -> None:
        """Called once with the training data before the loop (e.g. to keep reference images)."""

    def finish(self, originals: Originals, labels: torch.Tensor) -> dict[str, Any]:
        """Called once after the last iteration; what it returns is added to the weights file."""
        return {}

    def log_line(self, h: dict[str, float]) -> str:
        return " ".join(f"{k} {v:.3f}" for k, v in h.items() if k != "step")

    # ---- helpers for build() -----------------------------------------------------------------
    def generator_arch(self) -> dict[str, int]:
        """The encoder-resblocks-decoder widths from `config.sagan`, shared so every editor trains at SaGAN's size."""
        s = self.config.sagan
        return {"conv_dim": s.g_conv_dim, "downsamples": s.g_downsamples, "res_blocks": s.g_res_blocks}

    def initialised(self, *networks: torch.nn.Module) -> None:
        """N(0, 0.02) init (in the order given: it draws from the seeded RNG), then onto the device in `memory_format`."""
        from editing.networks import init_weights

        for net in networks:
            net.apply(init_weights)
            net.to(self.device, memory_format=self.memory_format)

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last on GPUs; NCHW on CPUs, where it trains the paper's SaGAN 10% faster in bf16
        (3.53 vs 3.93 s per iteration on this 2-core AVX-512-BF16 CPU; benchmarks/sagan_speed.py)."""
        return torch.channels_last if self.device.type == "cuda" else torch.contiguous_format

    def adam(self, *networks: torch.nn.Module) -> torch.optim.Adam:
        """Adam over these networks' parameters with the config's lr and betas (the paper's 2e-4, (0.5, 0.999))."""
        return torch.optim.Adam([p for net in networks for p in net.parameters()], lr=self.config.lr, betas=tuple(self.config.betas))

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print, seed: int = 0, validator=None) -> Path:
        """Train (resuming from the latest checkpoint); with `validator` and editor.select_every, keep the checkpoint
        that scores best on the validation faces (`editing.selection`)."""
        cfg = self.config
        out = self.out_dir
        tag = f"{self.editor_name}/{self.attribute}"
        (out / "samples").mkdir(parents=True, exist_ok=True)
        key = training_key(cfg, self.image_size, self.editor_name, multi_attribute=self.attribute == ALL)
        if (out / WEIGHTS).exists() and (out / EDITOR_JSON).exists():
            meta = json.loads((out / EDITOR_JSON).read_text())
            if meta.get("key") == key and meta.get("iterations") == cfg.iterations:
                progress(f"{tag}: already trained ({out})")
                return out
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(seed)
        self.arch, self.modules, self.optimizers = self.build()
        originals = load_originals(train_shards, "train")
        images, labels = originals.images, self.labels_for(originals)
        if images.shape[-1] != self.image_size:
            raise ValueError(f"shards hold {images.shape[-1]} px images, the editor is configured for {self.image_size} px")
        self.prepare(originals, labels)
        rng = torch.Generator().manual_seed(seed)
        step, history, self.elapsed = 0, [], 0.0
        selecting = bool(cfg.select_every) and validator is not None and self.editor_class is not None
        if cfg.select_every and not selecting:
            progress(f"{tag}: no validation scorer for this editor: keeping the last checkpoint")
        selection = {"criterion": None, "curve": [], "best_step": None, "best": None, "since_best": 0, "stopped_early_at": None}
        ckpt_path = out / CHECKPOINT
        if ckpt_path.exists():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            check_key(ckpt_path, state.get("key"), key, f"Use another output_dir, or delete {out} to retrain.")
            self._load_state(state)
            rng.set_state(state["rng"])
            step, history = state["step"], list(state["history"])
            self.elapsed = float(state.get("elapsed", 0.0))
            selection = state.get("selection") or selection
            progress(f"{tag}: resuming at iteration {step}")

        key_labels = self.balance_on(labels)
        positives = torch.nonzero(key_labels > 0.5).view(-1)
        negatives = torch.nonzero(key_labels < 0.5).view(-1)
        balance = cfg.balance_attribute or self.requires_balance
        if balance and (len(positives) == 0 or len(negatives) == 0):
            raise ValueError(f"cannot balance batches: {len(positives)} training images with {self.attribute}, {len(negatives)} without")
        if balance and cfg.batch_size < 2:
            raise ValueError(f"balanced batches need editor.batch_size >= 2, not {cfg.batch_size}")

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            if balance:
                half = cfg.batch_size // 2
                idx = torch.cat([
                    positives[torch.randint(len(positives), (half,), generator=rng)],
                    negatives[torch.randint(len(negatives), (cfg.batch_size - half,), generator=rng)],
                ])
            else:
                idx = torch.randint(len(images), (cfg.batch_size,), generator=rng)
            x = batch_to_model_range(images[idx]).to(self.device).contiguous(memory_format=self.memory_format)
            return x, labels[idx].to(self.device)

        fixed_idx = torch.cat([positives[:4], negatives[: 8 - min(4, len(positives))]])
        fixed = batch_to_model_range(images[fixed_idx]).to(self.device)
        started, start_step = time.perf_counter(), step
        autocast = autocast_dtype(cfg.precision, self.device)
        while step < cfg.iterations:
            self.step = step  # the iteration about to run (0-based), for loss schedules
            history.append({"step": step + 1, **self.iteration(draw, rng, autocast)})
            step += 1
            if step % max(1, min(50, cfg.iterations // 20)) == 0 or step == cfg.iterations:
                rate = (step - start_step) / max(time.perf_counter() - started, 1e-9)
                eta = (cfg.iterations - step) / max(rate, 1e-9)
                progress(f"{tag}: it {step}/{cfg.iterations} ({rate:.2f} it/s, eta {eta / 60:.1f} min) {self.log_line(history[-1])}")
            if step % cfg.sample_every == 0 or step == cfg.iterations:
                self._write_samples(fixed, labels[fixed_idx], step)
            stop = False
            if selecting and (step % cfg.select_every == 0 or step == cfg.iterations):
                stop = self._select(validator, selection, originals, labels, step, progress)
            if step % cfg.checkpoint_every == 0 or step == cfg.iterations or stop:
                save_torch_atomic({
                    "step": step, **{name: m.state_dict() for name, m in {**self.modules, **self.optimizers}.items()},
                    "rng": rng.get_state(), "history": history, "config": json.loads(cfg.model_dump_json()),
                    "arch": self.arch, "attribute": self.attribute, "image_size": self.image_size, "key": key,
                    "elapsed": self.elapsed + time.perf_counter() - started, "selection": selection,
                }, ckpt_path)
                (out / "losses.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
            if stop:
                break

        best = out / SELECTION_DIR / "best" / WEIGHTS
        if selecting and selection["best_step"] is not None and best.exists():
            shutil.copyfile(best, out / WEIGHTS)  # the chosen checkpoint, not the last one
        else:
            self._write_weights(out / WEIGHTS, originals, labels)
        record = {
            "editor": self.editor_name, "version": self.editor_version, "attribute": self.attribute,
            "attributes": [self.attribute], "image_size": self.image_size, "iterations": cfg.iterations,
            "arch": self.arch, "config": json.loads(cfg.model_dump_json()), "checkpoint_id": file_digest(out / WEIGHTS),
            "key": key, "train_seconds": round(self.elapsed + time.perf_counter() - started, 1),  # summed over resumes
            "selection": {k: selection[k] for k in ("criterion", "best_step", "best", "stopped_early_at")} if selecting
            else {"criterion": "the last checkpoint (editor.select_every = 0)", "best_step": step},
        }
        if selecting:
            write_json_atomic({**record["selection"], "curve": selection["curve"]}, out / SELECTION_JSON)
        write_json_atomic(record, out / EDITOR_JSON)
        return out

    def _write_weights(self, path: Path, originals: Originals, labels: torch.Tensor) -> None:
        extra = self.finish(originals, labels)
        save_torch_atomic({**self.weights(), **extra, "arch": self.arch, "attribute": self.attribute, "image_size": self.image_size},
                          path)

    def _select(self, validator, selection: dict, originals: Originals, labels: torch.Tensor, step: int,
                progress: Callable[[str], None]) -> bool:
        """Score the current weights on the validation faces, keep them if they are the best so far; True to stop early."""
        from editing.selection import criterion, rank

        candidate = self.out_dir / SELECTION_DIR / "candidate"
        candidate.mkdir(parents=True, exist_ok=True)
        for m in self.modules.values():
            m.eval()
        self._write_weights(candidate / WEIGHTS, originals, labels)
        for m in self.modules.values():
            m.train()
        write_json_atomic({"editor": self.editor_name, "attribute": self.attribute, "attributes": [self.attribute]},
                          candidate / EDITOR_JSON)
        editor = self.editor_class.load(candidate, device=self.device)
        attributes = list(getattr(editor, "model_attributes", None) or [self.attribute])
        scores = validator.score_all(editor, attributes)
        target = self.config.select_mask_target
        selection["criterion"] = criterion(target)
        selection["curve"].append({"step": step, **scores})
        improved = selection["best"] is None or rank(scores, target) > rank(selection["best"], target)
        if improved:
            best = self.out_dir / SELECTION_DIR / "best"
            best.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(candidate / WEIGHTS, best / WEIGHTS)
            selection.update(best=scores, best_step=step, since_best=0)
        else:
            selection["since_best"] += 1
        ratio, mask = scores["counterfactual_ratio"], scores.get("mask_mass_inside")
        progress(f"{self.editor_name}/{self.attribute}: validation at it {step}: weaker direction {scores['weaker_direction']:.3f}, "
                 f"outside change {scores['outside_change'] if scores['outside_change'] is None else round(scores['outside_change'], 4)}"
                 f"{'' if ratio is None else f', error to the true edit {ratio:.2f} of no edit'}"
                 f"{'' if mask is None else f', mask mass inside {mask:.2f}'}"
                 f"{' (best so far)' if improved else ''}")
        if self.config.patience and selection["since_best"] >= self.config.patience:
            selection["stopped_early_at"] = step
            progress(f"{self.editor_name}/{self.attribute}: no better validation score for {self.config.patience} scorings: stopping at it {step}")
            return True
        return False

    def _load_state(self, state: dict) -> None:
        for name, m in {**self.modules, **self.optimizers}.items():
            if name not in state:
                raise ValueError(f"{self.out_dir / CHECKPOINT} has no {name!r}; it was written by another editor")
            m.load_state_dict(state[name])

    @torch.no_grad()
    def _write_samples(self, fixed: torch.Tensor, c_org: torch.Tensor, step: int) -> None:
        for m in self.modules.values():
            m.eval()
        rows = self.sample_rows(fixed, c_org.to(fixed.device))
        for m in self.modules.values():
            m.train()
        sample_grid(rows).save(self.out_dir / "samples" / f"step-{step:06d}.png")
