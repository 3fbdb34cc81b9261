"""SaGAN (Zhang et al., ECCV 2018): one editor per attribute, trained with WGAN-GP.

The networks are in `sagan_nets.py` (Tables 1-2). The losses, numbered as in the paper:

    D:  L_src = -E[D_src(I)] + E[D_src(Î)] + λgp E[(||∇D_src(Ĩ)||2 - 1)^2]      (eq. 12)
        L_cls = E[-log D_cls(c^g | I)]                                        (eq. 2)
    G:  L_adv = -E[D_src(Î)]                                                  (eq. 13)
        L_cls = E[-log D_cls(c | Î)]                                          (eq. 9)
        L_rec = λ1 ||I - G(G(I, c), c^g)||1 + λ2 ||I - G(I, c^g)||1           (eq. 10)

with Î = G(I, c), c = 1 - c^g (the flipped label), λgp = 10, λ1 = 20, λ2 = 100,
Adam(2e-4, β = (0.5, 0.999)), batch 16, three D updates per G update.

Deviations from the paper, all optional and off in the `paper` profile:
  * `mask_l1` / `mask_tv`: L1 and total-variation penalties on the attention mask
    (the paper has none; AttentionGAN uses TV) against masks saturating or collapsing.
  * `balance_attribute`: draw half of each batch from images with the attribute
    (CelebA has glasses on 6.5% of images, so uniform batches rarely practise removal).
  * The attribute head outputs a logit and the sigmoid sits in the loss.
Not specified by the paper and chosen here: the number of iterations (config), and
that each D update sees a fresh batch with G updated on the last one (as StarGAN does).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from editing._training import load_originals, sample_grid, save_atomic, to_float, write_json_atomic
from editing.base import Editor, EditResult, Trainer, file_digest
from editing.registry import EditorPlugin
from editing.sagan_nets import Discriminator, Generator, init_weights

CHECKPOINT = "checkpoint.pt"  # full training state, for resume
WEIGHTS = "editor.pt"  # generator weights + architecture, for inference


def gradient_penalty(d_src: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP: (||∇ D(Ĩ)||2 - 1)^2 with Ĩ uniform on the segment between real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = d_src(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    return (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().mean() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().mean()


def _training_key(cfg, image_size: int) -> dict:
    """What determines a training run's result; a resume or reuse must match it (iterations may grow)."""
    skip = {"iterations", "checkpoint_every", "sample_every", "threads", "attributes"}
    return {"image_size": image_size, **{k: v for k, v in json.loads(cfg.model_dump_json()).items() if k not in skip}}


def _inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs and on CPUs with native bf16 (AVX-512 BF16 / AMX), else fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    except (AttributeError, RuntimeError):
        return torch.float32


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def sagan_iteration(g: Generator, d: Discriminator, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                    s, n_critic: int, rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """One SaGAN iteration: `n_critic` discriminator updates, then one generator update.

    `draw()` returns a fresh (images, labels) batch; `s` holds the loss weights (SaganParams).
    """
    device_type = next(g.parameters()).device.type
    amp = torch.autocast(device_type, dtype=autocast or torch.bfloat16, enabled=autocast is not None)
    d_src = lambda x: d(x)[0]  # noqa: E731
    # 1. Train the discriminator n_critic times, each on a fresh batch.
    for _ in range(n_critic):
        x, c_org = draw()
        c_trg = 1 - c_org
        with amp:
            with torch.no_grad():
                fake, _ = g(x, c_trg)
            src, cls = d(torch.cat([x, fake]))  # one pass over real and fake (D has no batch statistics)
            src_real, src_fake = src[: len(x)], src[len(x):]
            d_adv = -src_real.float().mean() + src_fake.float().mean()
            d_cls = F.binary_cross_entropy_with_logits(cls[: len(x)].float(), c_org)
            d_gp = gradient_penalty(d_src, x, fake.float(), rng)
            d_loss = d_adv + s.lambda_gp * d_gp + s.lambda_cls * d_cls
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # 2. Train the generator on the last batch. SAN does not see c, so one mask serves
    #    both G(I, c) and G(I, c^g); AMN runs once on the stacked batch.
    with amp:
        mask = g.attend(x)
        manip = g.manipulate(torch.cat([x, x]), torch.cat([c_trg, c_org]))
        fake = g.blend(x, manip[: len(x)], mask)
        # Identity loss (eq. 10, λ2): with identity_trains_mask=False it cannot be met by shutting the mask.
        same = g.blend(x, manip[len(x):], mask if s.identity_trains_mask else mask.detach())
        rec, _ = g(fake, c_org)
        src_fake, cls_fake = d(fake)
        g_adv = -src_fake.float().mean()
        g_cls = F.binary_cross_entropy_with_logits(cls_fake.float(), c_trg)
        g_dual = (x - rec.float()).abs().mean()
        g_id = (x - same.float()).abs().mean()
        g_loss = g_adv + s.lambda_cls * g_cls + s.lambda_dual * g_dual + s.lambda_identity * g_id
        if s.mask_l1:
            g_loss = g_loss + s.mask_l1 * mask.float().mean()
        if s.mask_tv:
            g_loss = g_loss + s.mask_tv * total_variation(mask.float())
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), "g_adv": g_adv.item(), "g_cls": g_cls.item(),
            "g_dual": g_dual.item(), "g_id": g_id.item(), "mask_mean": mask.float().mean().item()}


class SaganEditor(Editor):
    name = "sagan"
    version = "1"
    has_mask = True

    def __init__(self, generator: Generator, attribute: str, image_size: int, checkpoint_id: str, device: torch.device,
                 precision: str = "auto"):
        super().__init__((attribute,), checkpoint_id)
        self.dtype = _inference_dtype(precision, device)
        # bf16 weights (not autocast): no per-call casts. Measured on a 2-core AVX-512-BF16 CPU at the paper's
        # 128 px, batch 16: fp32 15 img/s, autocast bf16 26, bf16 weights 30 (benchmarks/sagan_speed.py).
        # channels_last helps on GPUs but slows these convs on the CPU.
        fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.generator = generator.eval().to(device=device, dtype=self.dtype, memory_format=fmt)
        self.memory_format = fmt
        self.image_size = image_size
        self.device = device

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "SaganEditor":
        path = Path(directory) / WEIGHTS
        if not path.exists():
            raise FileNotFoundError(f"{path}: no trained SaGAN here (train it with `faceaug editors train`)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        g = Generator(**state["arch"])
        g.load_state_dict(state["generator"])
        return cls(g, state["attribute"], state["image_size"], file_digest(path), torch.device(device), precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        if images.shape[0] != target.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {target.shape[0]} targets")
        x = images.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        out, mask = self.generator(x, target.to(self.device, self.dtype))
        return EditResult(out.float().clamp_(-1, 1).cpu(), mask.float().cpu())


class SaganTrainer(Trainer):
    """Trains one SaGAN for one attribute; resumes exactly from `checkpoint.pt`."""

    def _build(self):
        s = self.config.sagan
        arch = {"conv_dim": s.g_conv_dim, "downsamples": s.g_downsamples, "res_blocks": s.g_res_blocks}
        g = Generator(**arch)
        d = Discriminator(self.image_size, s.d_conv_dim, s.d_layers)
        g.apply(init_weights)
        d.apply(init_weights)
        g.to(self.device, memory_format=torch.channels_last)
        d.to(self.device, memory_format=torch.channels_last)
        opt_g = torch.optim.Adam(g.parameters(), lr=self.config.lr, betas=tuple(self.config.betas))
        opt_d = torch.optim.Adam(d.parameters(), lr=self.config.lr, betas=tuple(self.config.betas))
        return arch, g, d, opt_g, opt_d

    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print, seed: int = 0) -> Path:
        cfg, s = self.config, self.config.sagan
        out = self.out_dir
        (out / "samples").mkdir(parents=True, exist_ok=True)
        key = _training_key(cfg, self.image_size)
        if (out / WEIGHTS).exists() and (out / "editor.json").exists():
            meta = json.loads((out / "editor.json").read_text())
            if meta.get("key") == key and meta.get("iterations") == cfg.iterations:
                progress(f"sagan/{self.attribute}: already trained ({out})")
                return out
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(seed)
        arch, g, d, opt_g, opt_d = self._build()
        originals = load_originals(train_shards, "train")
        images, labels = originals.images, originals.labels(self.attribute)
        if images.shape[-1] != self.image_size:
            raise ValueError(f"shards hold {images.shape[-1]} px images, the editor is configured for {self.image_size} px")
        rng = torch.Generator().manual_seed(seed)
        step, history = 0, []
        ckpt_path = out / CHECKPOINT
        if ckpt_path.exists():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if state.get("key") != key:
                raise ValueError(f"{ckpt_path} was trained with {state.get('key')}; this run asks for {key}. "
                                 f"Use another output_dir, or delete {out} to retrain.")
            g.load_state_dict(state["generator"])
            d.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            rng.set_state(state["rng"])
            step, history = state["step"], list(state["history"])
            progress(f"sagan/{self.attribute}: resuming at iteration {step}")

        positives = torch.nonzero(labels > 0.5).view(-1)
        negatives = torch.nonzero(labels < 0.5).view(-1)
        balance = cfg.balance_attribute
        if balance and (len(positives) == 0 or len(negatives) == 0):
            raise ValueError(f"cannot balance batches: {len(positives)} images with {self.attribute}, {len(negatives)} without")

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            if balance:
                half = cfg.batch_size // 2
                idx = torch.cat([
                    positives[torch.randint(len(positives), (half,), generator=rng)],
                    negatives[torch.randint(len(negatives), (cfg.batch_size - half,), generator=rng)],
                ])
            else:
                idx = torch.randint(len(labels), (cfg.batch_size,), generator=rng)
            x = to_float(images[idx]).to(self.device).contiguous(memory_format=torch.channels_last)
            return x, labels[idx].to(self.device)

        fixed_idx = torch.cat([positives[:4], negatives[: 8 - min(4, len(positives))]])
        fixed = to_float(images[fixed_idx]).to(self.device)
        started, start_step = time.perf_counter(), step
        autocast = _autocast_dtype(cfg.precision, self.device)
        while step < cfg.iterations:
            history.append({"step": step + 1, **sagan_iteration(g, d, opt_g, opt_d, draw, s, cfg.n_critic, rng, autocast)})
            step += 1

            # 3. Log, sample, checkpoint.
            if step % max(1, min(50, cfg.iterations // 20)) == 0 or step == cfg.iterations:
                rate = (step - start_step) / max(time.perf_counter() - started, 1e-9)
                eta = (cfg.iterations - step) / max(rate, 1e-9)
                h = history[-1]
                progress(
                    f"sagan/{self.attribute}: it {step}/{cfg.iterations} ({rate:.2f} it/s, eta {eta / 60:.1f} min) "
                    f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | "
                    f"G adv {h['g_adv']:.3f} cls {h['g_cls']:.3f} dual {h['g_dual']:.3f} id {h['g_id']:.3f} mask {h['mask_mean']:.3f}"
                )
            if step % cfg.sample_every == 0 or step == cfg.iterations:
                self._write_samples(g, fixed, labels[fixed_idx], step)
            if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
                save_atomic({
                    "step": step, "generator": g.state_dict(), "discriminator": d.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": rng.get_state(),
                    "history": history, "config": json.loads(cfg.model_dump_json()), "arch": arch,
                    "attribute": self.attribute, "image_size": self.image_size, "key": key,
                }, ckpt_path)
                (out / "losses.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))

        save_atomic({"generator": g.state_dict(), "arch": arch, "attribute": self.attribute, "image_size": self.image_size}, out / WEIGHTS)
        write_json_atomic({
            "editor": "sagan", "version": SaganEditor.version, "attribute": self.attribute, "attributes": [self.attribute],
            "image_size": self.image_size, "iterations": cfg.iterations, "arch": arch,
            "config": json.loads(cfg.model_dump_json()), "checkpoint_id": file_digest(out / WEIGHTS), "key": key,
        }, out / "editor.json")
        return out

    @torch.no_grad()
    def _write_samples(self, g: Generator, fixed: torch.Tensor, c_org: torch.Tensor, step: int) -> None:
        """input | edited (flipped label) | mask | residual, one face per row (the paper's Fig. 3)."""
        g.eval()
        edited, mask = g(fixed, 1 - c_org.to(fixed.device))
        g.train()
        rows = [[fixed[i], edited[i], mask[i], (edited[i] - fixed[i]).abs() * 2 - 1] for i in range(len(fixed))]
        sample_grid(rows).save(self.out_dir / "samples" / f"step-{step:06d}.png")


PLUGIN = EditorPlugin("sagan", SaganEditor, SaganTrainer, "SaGAN: attribute manipulation + spatial attention (Zhang et al., ECCV 2018)")
