"""CRG, the Cyclic Reverse Generator (Dogan & Keles, "Semi-supervised image attribute editing using
generative adversarial networks", Neurocomputing 2020): edit a face by moving its latent code.

Two stages, in one run of `config.iterations` iterations (the last `params.encoder_fraction` of
them are stage 2). The networks are in `crg_nets.py`.

Stage 1, an unconditional GAN on the training faces (no labels), with PGGAN's WGAN-GP loss [22]:

    D:  L_D = -E[D(I)] + E[D(G(z))] + λgp E[(||∇D(Ĩ)||2 - 1)^2],    z ~ N(0, I)
    G:  L_G = -E[D(G(z))]

Stage 2, the encoder E learns G's inverse with G frozen, two E updates per iteration, in order:

    (1)  L_z = ||E(G(z)) - z||^2     MSE in latent space, on generated images     (eq. 1)
    (2)  L_I = ||G(E(I)) - I||_1     MAE in image space, on real images           (eq. 2)

Direction (eq. 3), from reference pairs: a face with the attribute (z_a = E(I_a)) and one without
(z_r = E(I_r)), d_i = (z_a - z_r) / ||z_a - z_r||; section 3.4 averages the directions of several
pairs (`params.reference_pairs`), and we re-normalise the average so k is a latent distance.
Edit (eq. 4): z' = E(I) + k d, output G(z'): the whole image is regenerated (no mask).

The safe range of k (sections 3.4 and 4.4): projecting real faces on d, p = E(I)·d, gives two
normal densities, N(μa, σa) with the attribute and N(μn, σn) without. Beyond μ ± 2σ the attribute
is exaggerated or the face changes, so the paper bounds k by the distance from an image's projection
to those points, and edits at the μa - 2σa, μa and μa + 2σa points (Fig. 18). With Δ = μa - μn and
σ = min(σa, σn), k in [Δ - 2σ, Δ + 2σ] (floored at 0) takes a typical face without the attribute to
within 2σa of μa, and one with it (k negated) to within 2σn of μn. `targets_for` returns ±k with
k = Δ, the μa point (the distances the paper reports are these averages over neutral images);
`params.k` overrides it. Both are computed from the training originals after the last iteration and
stored in editor.pt. If Δ <= 0 the direction does not separate the classes (an undertrained encoder):
k is 0 (edits are reconstructions) and training says so.

What the paper does and we do not:
  * GAN: its generator is PGGAN-like with progressive growing, spectral normalisation in G and D,
    TTUR learning rates and a 1:2 G:D update ratio. Ours is a DCGAN-style generator at a fixed
    resolution and at the SaGAN generator's width (`config.sagan.g_conv_dim`, `g_downsamples`;
    `g_res_blocks` is unused: G has no bottleneck), trained with WGAN-GP against networks'
    Discriminator conv stack and real/fake head (`d_conv_dim`, `d_layers`, `lambda_gp`),
    Adam(`editor.lr`, `editor.betas`) for both, `editor.n_critic` D updates per G update.
    (A PGGAN-shaped G with pixel norm, biases and no equalised learning rate collapsed to one flat
    image within 600 iterations on the evidence data; batch norm removes that constant pathway.)
    G's batch norm uses batch statistics in stage 1 and its running statistics from stage 2 on,
    so the encoder learns to invert the G that editing uses.
  * Encoder: the paper starts from ImageNet VGG-16 blocks (4th max-pool removed) plus two new
    blocks; ours has the same block shape (3x3 convs, batch norm at the block end, global max pool
    after a 1x1 conv to z_dim) trained from scratch, `d_layers` blocks from `d_conv_dim` channels
    (the discriminator's depth and width; at the paper profile about 5.7x G's parameters, as the
    paper keeps E larger than G). No spatial dropout, rotation/flip augmentation, learning-rate
    decay on validation loss or early stopping: they regularise long multi-epoch runs, and without
    them every iteration is a function of the seeded batch stream, so resume is exact.
  * RMSProp for E as the paper, lr `params.encoder_lr` (default `editor.lr`), rho 0.9, eps 1e-7
    (Keras's defaults: the paper's values are not legible in our copy of it).
  * Each stage runs a fixed share of the budget; the paper trains each to convergence.
  * References: the paper picks pairs by hand, usually one person with and without the attribute.
    We draw them (seeded) from the training originals: the same identity where one has images with
    and without the attribute, any two images otherwise. The projections use up to
    `params.projection_images` training images per class; the paper used unseen images (our test
    split is kept for evaluation).
  * k: the paper bounds k per image by that image's own projection; `targets_for` does not see the
    images, so one k (the class-mean distance) serves every image.
  * z_dim: the paper compares 512 and 128 (Table 1) and keeps the lower; default 128.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from editing.gan import GanEditor, GanTrainer
from editing.originals import Originals
from editing.base import EditResult, editor_params
from editing.crg_nets import Encoder, LatentGenerator
from editing.registry import EditorPlugin
from editing.losses import gradient_penalty
from editing.networks import Discriminator
from pipeline.images import batch_to_model_range
from pipeline.precision import amp as _amp


class CrgParams(BaseModel):
    """`editor.params` for crg."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    z_dim: int = Field(128, ge=2, description="latent dimension (paper: 128, the lower of Table 1's two)")
    encoder_fraction: float = Field(0.5, gt=0, lt=1, description="share of editor.iterations that trains the encoder (stage 2)")
    encoder_lr: float | None = Field(None, gt=0, description="RMSProp learning rate of the encoder; None = editor.lr")
    reference_pairs: int = Field(16, ge=1, description="(with, without) reference pairs averaged into the direction (section 3.4)")
    projection_images: int = Field(1000, ge=1, description="training images per class projected on d for the safe range of k")
    k: float | None = Field(None, gt=0, description="edit strength; None = computed from the projections (Δ = μ_with - μ_without)")


def parse_params(params: dict) -> CrgParams:
    """`editor.params` -> CrgParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(CrgParams, params, "crg")


def gan_iterations(iterations: int, encoder_fraction: float) -> int:
    """Stage 1's share of the budget (rounded half up); stage 2 gets the rest."""
    return int(iterations * (1 - encoder_fraction) + 0.5)


class Stages(nn.Module):
    """Iterations done in each stage. Buffers, so GanTrainer's checkpoint (modules by name) carries
    them: a run resumed on either side of the stage boundary knows where it is."""

    def __init__(self):
        super().__init__()
        self.register_buffer("gan", torch.zeros((), dtype=torch.long))
        self.register_buffer("encoder", torch.zeros((), dtype=torch.long))


def gan_iteration(g: LatentGenerator, d: nn.Module, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                  n_critic: int, lambda_gp: float, rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """Stage 1: `n_critic` WGAN-GP critic updates, each on a fresh real batch and fresh z, then one G update."""
    device = next(g.parameters()).device
    amp = _amp(autocast, device.type)
    # 1. Train the critic.
    for _ in range(n_critic):
        x, _ = draw()
        z = torch.randn(len(x), g.z_dim, generator=rng).to(device)
        with amp:
            with torch.no_grad():
                fake = g(z)
            src = d(torch.cat([x, fake]))  # D has no batch statistics: one pass over real and fake
            d_adv = -src[: len(x)].float().mean() + src[len(x):].float().mean()
            d_gp = gradient_penalty(d, x, fake.float(), rng)
            d_loss = d_adv + lambda_gp * d_gp
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # 2. Train the generator (D's parameters get gradients here, cleared before its next step).
    z = torch.randn(len(x), g.z_dim, generator=rng).to(device)
    with amp:
        g_adv = -d(g(z)).float().mean()
    opt_g.zero_grad(set_to_none=True)
    g_adv.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_gp": d_gp.item(), "g_adv": g_adv.item()}


def encoder_iteration(g: LatentGenerator, e: Encoder, opt_e, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                      rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """Stage 2: two encoder updates with G frozen, eq. (1) then eq. (2)."""
    device = next(g.parameters()).device
    amp = _amp(autocast, device.type)
    g.eval().requires_grad_(False)  # G is fixed, as editing runs it; gradients still flow through it into E in (2)
    x, _ = draw()
    # 1. Latent cycle on generated images: E(G(z)) ≈ z.
    z = torch.randn(len(x), g.z_dim, generator=rng).to(device)
    with amp:
        with torch.no_grad():
            fake = g(z)
        z_mse = F.mse_loss(e(fake).float(), z)
    opt_e.zero_grad(set_to_none=True)
    z_mse.backward()
    opt_e.step()
    # 2. Image cycle on real images: G(E(I)) ≈ I.
    with amp:
        i_mae = (g(e(x)).float() - x).abs().mean()
    opt_e.zero_grad(set_to_none=True)
    i_mae.backward()
    opt_e.step()
    return {"z_mse": z_mse.item(), "i_mae": i_mae.item()}


def reference_pairs(identities: torch.Tensor, labels: torch.Tensor, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n (with, without) index pairs: one person with and without the attribute where an identity has
    both (the paper's references), then any image with and any without."""
    has = labels > 0.5
    people = [p for p in torch.unique(identities).tolist() if has[identities == p].any() and (~has[identities == p]).any()]
    with_idx, without_idx = [], []
    for j in torch.randperm(len(people), generator=rng)[:n].tolist():
        mine = identities == people[j]
        for side, out in ((mine & has, with_idx), (mine & ~has, without_idx)):
            options = torch.nonzero(side).view(-1)
            out.append(options[torch.randint(len(options), (), generator=rng)])
    rest = n - len(with_idx)
    if rest:
        pos, neg = torch.nonzero(has).view(-1), torch.nonzero(~has).view(-1)
        with_idx += list(pos[torch.randint(len(pos), (rest,), generator=rng)])
        without_idx += list(neg[torch.randint(len(neg), (rest,), generator=rng)])
    return torch.stack(with_idx), torch.stack(without_idx)


def attribute_direction(z_with: torch.Tensor, z_without: torch.Tensor) -> torch.Tensor:
    """Eq. 3 for each pair, d_i = (z_a - z_r) / ||z_a - z_r||, averaged (section 3.4) and re-normalised."""
    d = F.normalize(z_with - z_without, dim=1).mean(0)
    return d / d.norm().clamp_min(1e-12)


def strength(p_with: torch.Tensor, p_without: torch.Tensor) -> tuple[float, tuple[float, float], dict[str, float]]:
    """(k, safe range of k, projection statistics) from projections on d of faces with and without the attribute."""
    stats = {"mean_with": p_with.mean().item(), "std_with": p_with.std(correction=0).item(),
             "mean_without": p_without.mean().item(), "std_without": p_without.std(correction=0).item()}
    delta = stats["mean_with"] - stats["mean_without"]
    spread = 2 * min(stats["std_with"], stats["std_without"])
    low, high = max(0.0, delta - spread), max(0.0, delta + spread)
    return min(max(delta, low), high), (low, high), stats


@torch.no_grad()
def encode(e: Encoder, images: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    """uint8 images -> latent codes (E in eval mode, fp32)."""
    return torch.cat([e(batch_to_model_range(images[i : i + batch]).to(device)).float().cpu() for i in range(0, len(images), batch)])


class CrgEditor(GanEditor):
    name = "crg"
    version = "1"
    has_mask = False
    target_kind = "strength"
    title = "CRG"

    def __init__(self, generator: LatentGenerator, encoder: Encoder, direction: torch.Tensor, k: float,
                 safe_range: tuple[float, float], projection: dict[str, float], attribute: str, image_size: int,
                 checkpoint_id: str, device: torch.device, precision: str = "auto"):
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.generator, self.encoder = self.place(generator), self.place(encoder)
        self.direction = direction.to(device=device, dtype=self.dtype)
        self.k = float(k)  # |target| for "added" / "removed"
        self.safe_range = (float(safe_range[0]), float(safe_range[1]))
        self.projection = dict(projection)  # mean/std of E(I)·d over training faces with / without the attribute

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "CrgEditor":
        state, checkpoint_id = cls.read_weights(directory)
        g, e = LatentGenerator(**state["arch"]["generator"]), Encoder(**state["arch"]["encoder"])
        g.load_state_dict(state["generator"])
        e.load_state_dict(state["encoder"])
        return cls(g, e, state["direction"], state["k"], tuple(state["safe_range"]), state["projection"], state["attribute"],
                   state["image_size"], checkpoint_id, torch.device(device), precision)

    def targets_for(self, kind: str, n: int) -> torch.Tensor:
        """+k adds the attribute, -k removes it (eq. 4)."""
        if kind not in ("added", "removed"):
            raise ValueError(f"edit kind must be 'added' or 'removed', not {kind!r}")
        return torch.full((n,), self.k if kind == "added" else -self.k)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        """G(E(I) + k d) with k = target, one per image; k = 0 gives the reconstruction G(E(I))."""
        z = self.encoder(self.batch(images, target)) + target.to(self.device, self.dtype).view(-1, 1) * self.direction
        return EditResult(self.generator(z).float().clamp_(-1, 1).cpu())


class CrgTrainer(GanTrainer):
    """Stage 1 (GAN) then stage 2 (encoder) for one attribute, then the direction and k; the loop is `GanTrainer`'s."""

    editor_name = "crg"
    editor_version = CrgEditor.version
    editor_class = CrgEditor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = parse_params(self.config.params)  # fail before any data is read

    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print, seed: int = 0) -> Path:
        self.seed, self.progress = seed, progress  # finish() draws the references from the run's seed and reports k
        return super().fit(train_shards, progress=progress, seed=seed)

    def build(self):
        s, p = self.config.sagan, self.params
        arch = {"generator": {"image_size": self.image_size, "z_dim": p.z_dim, "conv_dim": s.g_conv_dim, "downsamples": s.g_downsamples},
                "encoder": {"image_size": self.image_size, "z_dim": p.z_dim, "conv_dim": s.d_conv_dim, "blocks": s.d_layers}}
        critic = Discriminator(self.image_size, s.d_conv_dim, s.d_layers)
        nets = {"generator": LatentGenerator(**arch["generator"]), "encoder": Encoder(**arch["encoder"]),
                "discriminator": nn.Sequential(critic.main, critic.src)}  # the real/fake head only: no labels in CRG
        self.initialised(*nets.values())
        modules = {**nets, "stages": Stages().to(self.device)}
        optimizers = {
            "opt_g": self.adam(nets["generator"]),
            "opt_d": self.adam(nets["discriminator"]),
            "opt_e": torch.optim.RMSprop(nets["encoder"].parameters(), lr=p.encoder_lr or self.config.lr, alpha=0.9, eps=1e-7),
        }
        return arch, modules, optimizers

    def iteration(self, draw, rng, autocast):
        m, o, stages = self.modules, self.optimizers, self.modules["stages"]
        boundary = gan_iterations(self.config.iterations, self.params.encoder_fraction)
        if stages.encoder == 0 and stages.gan < boundary:
            stages.gan += 1
            return gan_iteration(m["generator"], m["discriminator"], o["opt_g"], o["opt_d"], draw, self.config.n_critic,
                                 self.config.sagan.lambda_gp, rng, autocast)
        if stages.gan != boundary:  # editor.iterations grew after stage 2 had begun
            raise ValueError(f"{self.out_dir}: stage 1 (GAN) ended after {int(stages.gan)} iterations, but editor.iterations="
                             f"{self.config.iterations} with encoder_fraction={self.params.encoder_fraction} puts the end at "
                             f"{boundary}; keep the earlier editor.iterations, or delete {self.out_dir} to retrain")
        stages.encoder += 1
        return encoder_iteration(m["generator"], m["encoder"], o["opt_e"], draw, rng, autocast)

    def log_line(self, h):
        if "z_mse" in h:
            return f"encoder: latent MSE {h['z_mse']:.3f} image MAE {h['i_mae']:.3f}"
        return f"GAN: D adv {h['d_adv']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f}"

    def sample_rows(self, fixed, c_org):
        """input | reconstruction G(E(I)) | a sample G(z) | its reconstruction G(E(G(z))), one per row (z fixed)."""
        g, e = self.modules["generator"], self.modules["encoder"]
        z = torch.randn(len(fixed), self.params.z_dim, generator=torch.Generator().manual_seed(self.seed)).to(fixed.device)
        recon, sample = g(e(fixed)), g(z)
        cycle = g(e(sample))
        return [[fixed[i], recon[i], sample[i], cycle[i]] for i in range(len(fixed))]

    def weights(self):
        return {"generator": self.modules["generator"].state_dict(), "encoder": self.modules["encoder"].state_dict()}

    def prepare(self, originals: Originals, labels: torch.Tensor) -> None:
        """Refuse before training, not after: the direction needs faces with and without the attribute."""
        has = labels > 0.5
        if not has.any() or has.all():
            raise ValueError(f"CRG needs training images with and without {self.attribute} for its reference pairs; "
                             f"there are {int(has.sum())} with and {int((~has).sum())} without")

    def finish(self, originals: Originals, labels: torch.Tensor) -> dict[str, Any]:
        """The direction d from reference pairs (eq. 3, section 3.4) and k with its safe range (section 4.4)."""
        has = labels > 0.5
        e = self.modules["encoder"].eval()
        rng = torch.Generator().manual_seed(self.seed)
        with_idx, without_idx = reference_pairs(originals.identities, labels, self.params.reference_pairs, rng)
        direction = attribute_direction(encode(e, originals.images[with_idx], self.device),
                                        encode(e, originals.images[without_idx], self.device))
        projected = []
        for side in (has, ~has):
            idx = torch.nonzero(side).view(-1)
            idx = idx[torch.randperm(len(idx), generator=rng)[: self.params.projection_images]]
            projected.append(encode(e, originals.images[idx], self.device) @ direction)
        k, safe_range, stats = strength(*projected)
        tag = f"{self.editor_name}/{self.attribute}"
        if self.params.k is not None:
            k = self.params.k
            if not safe_range[0] <= k <= safe_range[1]:
                self.progress(f"{tag}: editor.params.k = {k} is outside the safe range [{safe_range[0]:.3f}, {safe_range[1]:.3f}]")
        elif k == 0:
            self.progress(f"{tag}: the direction does not separate training faces with and without {self.attribute} (mean "
                          f"projections {stats['mean_with']:.3f} vs {stats['mean_without']:.3f}), so k = 0 and edits are "
                          "reconstructions; train longer or set editor.params.k")
        self.progress(f"{tag}: k = {k:.3f}, safe range [{safe_range[0]:.3f}, {safe_range[1]:.3f}]")
        return {"direction": direction, "k": k, "safe_range": list(safe_range), "projection": stats,
                "references": [[originals.sample_ids[a], originals.sample_ids[b]] for a, b in zip(with_idx.tolist(), without_idx.tolist())]}


PLUGIN = EditorPlugin("crg", CrgEditor, CrgTrainer,
                      "CRG: GAN + cyclic encoder, edits along a latent attribute direction, strength k (Dogan & Keles, 2020)")
