"""ResGAN-style residual editor (Shen & Liu, "Learning Residual Images for Face Attribute
Manipulation", CVPR 2017), discussed in the SaGAN paper's related work and comparison.

Two unconditional generators predict a residual image that is added to the input; G0
takes the attribute away, G1 adds it, and each image goes to the generator for its target:

    Î = x + r,   r = G_c(x)          (c = 1 - c^g, the flipped label)
    at inference Î is clamped to [-1, 1]; r itself is not bounded (no Tanh)

Losses, with D SaGAN's WGAN-GP discriminator (a real/fake map D_src and an attribute logit D_cls):

    D:  L_src = -E[D_src(x)] + E[D_src(Î)] + λgp E[(||∇D_src(x̃)||2 - 1)^2],   L_cls = E[-log D_cls(c^g | x)]
    G:  L_adv = -E[D_src(Î)],   L_cls = E[-log D_cls(c | Î)]
        L_pix  = λres mean|r|                                   (the residual is sparse)
        L_dual = λdual ||x - (Î + G_{c^g}(Î))||1               (G1(G0(x)) ≈ x and G0(G1(x)) ≈ x)

λgp, λcls, λdual (= config.sagan.lambda_dual), the optimiser, batch size, n_critic (each D
update on a fresh batch, G on the last) and the network widths are SaGAN's, so the two
editors differ only in how the edit is made. λres is `editor.params.lambda_residual`.

Deviations from the paper:
  * D: the paper's D is a 3-class classifier (attribute 0 / attribute 1 / generated) trained
    with cross-entropy; here it is SaGAN's WGAN-GP critic with an attribute head, so the
    comparison with SaGAN does not mix in a different adversarial loss.
  * L_pix: the paper puts α = 5e-4 on the L1 norm of r summed over the pixels of a
    128 x 128 x 3 image. We average over pixels instead, so the weight does not depend on the
    image size; the default λres = 5e-4 * 3 * 128 * 128 ≈ 24.6 is the paper's weight at its
    resolution. It was not re-tuned for the WGAN-GP losses.
  * L_dual: an L1 cycle reconstruction weighted like SaGAN's dual term (the paper's dual
    learning feeds each generator's output to the other generator and trains both on the
    results; the exact form of that term is not reproduced).
  * Not used: the paper's perceptual loss, and SaGAN's identity term (`sagan.lambda_identity`,
    `identity_trains_mask`) and mask penalties, which have no counterpart here.
  * Generators: SaGAN's encoder - residual blocks - decoder (`networks.EncoderDecoder`, the
    AMN without the attribute channel), with the final Tanh removed; widths from `config.sagan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from editing.gan import GanEditor, GanTrainer
from editing.base import EditResult, editor_params
from editing.registry import EditorPlugin
from editing.losses import critic_steps, flipped
from editing.networks import Discriminator, EncoderDecoder
from pipeline.precision import amp as _amp


class ResganParams(BaseModel):
    """`editor.params` for resgan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lambda_residual: float = Field(5e-4 * 3 * 128 * 128, ge=0,
                                   description="weight of mean|r| (the paper's α = 5e-4 on the sum over a 128 px image)")


def parse_params(params: dict) -> ResganParams:
    """`editor.params` -> ResganParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(ResganParams, params, "resgan")


def residual_network(conv_dim: int, downsamples: int, res_blocks: int) -> EncoderDecoder:
    """The AMN's architecture without the attribute channel; its output is the residual image."""
    net = EncoderDecoder(3, 3, conv_dim, downsamples, res_blocks)
    net.main[-1] = nn.Identity()  # no Tanh: x + r is clamped at inference instead
    return net


class ResidualPair(nn.Module):
    """G0 removes the attribute, G1 adds it; `forward` routes each image to the one for its target."""

    def __init__(self, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4):
        super().__init__()
        self.g0 = residual_network(conv_dim, downsamples, res_blocks)
        self.g1 = residual_network(conv_dim, downsamples, res_blocks)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The residual r taking each image to its target c (1: G1, 0: G0)."""
        add = c.view(-1) > 0.5
        r = None
        for net, idx in ((self.g1, torch.nonzero(add).view(-1)), (self.g0, torch.nonzero(~add).view(-1))):
            if len(idx) == 0:
                continue  # instance norm cannot run on an empty batch
            part = net(x[idx])
            r = (part.new_zeros(x.shape) if r is None else r).index_copy(0, idx, part)
        return r if r is not None else torch.zeros_like(x)


def resgan_iteration(g: ResidualPair, d: Discriminator, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                     s, lambda_residual: float, n_critic: int, rng: torch.Generator,
                     autocast: torch.dtype | None = None) -> dict[str, float]:
    """One iteration: `n_critic` discriminator updates, then one update of both generators.

    `draw()` returns a fresh (images, labels) batch; `s` holds SaGAN's loss weights (SaganParams).
    """
    amp = _amp(autocast, next(g.parameters()).device.type)
    # 1. Train the discriminator n_critic times, each on a fresh batch (as SaGAN).
    (x, c_org, c_trg), (d_adv, d_cls, d_gp) = critic_steps(flipped(lambda x, c: x + g(x, c)), d, opt_d, draw, s, n_critic, rng, amp)

    # 2. Train the generators on the last batch: the edit, then the other generator undoing it.
    with amp:
        r = g(x, c_trg)
        fake = x + r
        rec = fake + g(fake, c_org)
        src_fake, cls_fake = d(fake)
        g_adv = -src_fake.float().mean()
        g_cls = F.binary_cross_entropy_with_logits(cls_fake.float(), c_trg)
        g_dual = (x - rec.float()).abs().mean()
        g_res = r.float().abs().mean()
        g_loss = g_adv + s.lambda_cls * g_cls + s.lambda_dual * g_dual + lambda_residual * g_res
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), "g_adv": g_adv.item(),
            "g_cls": g_cls.item(), "g_dual": g_dual.item(), "g_res": g_res.item()}


class ResganEditor(GanEditor):
    name = "resgan"
    version = "1"
    has_mask = False
    title = "ResGAN-style editor"

    def __init__(self, generators: ResidualPair, attribute: str, image_size: int, checkpoint_id: str, device: torch.device,
                 precision: str = "auto"):
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.generators = self.place(generators)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "ResganEditor":
        return cls.load_network(directory, ResidualPair, "generators", device, precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        r = self.generators(self.batch(images, target), target.to(self.device))
        x = images.to(self.device, torch.float32)
        return EditResult((x + r.float()).clamp_(-1, 1).cpu())  # the input itself is not rounded to bf16


class ResganTrainer(GanTrainer):
    """Trains G0, G1 and D for one attribute; the loop (resume, batches, logs, samples) is `GanTrainer`'s."""

    editor_name = "resgan"
    editor_version = ResganEditor.version
    editor_class = ResganEditor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = parse_params(self.config.params)

    def build(self):
        s = self.config.sagan
        arch = self.generator_arch()
        g = ResidualPair(**arch)
        d = Discriminator(self.image_size, s.d_conv_dim, s.d_layers)
        self.initialised(g, d)
        return arch, {"generators": g, "discriminator": d}, {"opt_g": self.adam(g), "opt_d": self.adam(d)}

    def iteration(self, draw, rng, autocast):
        m, o = self.modules, self.optimizers
        return resgan_iteration(m["generators"], m["discriminator"], o["opt_g"], o["opt_d"], draw, self.config.sagan,
                                self.params.lambda_residual, self.config.n_critic, rng, autocast)

    def log_line(self, h):
        return (f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f} "
                f"cls {h['g_cls']:.3f} dual {h['g_dual']:.3f} |r| {h['g_res']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | edited (flipped label) | |residual|, one face per row."""
        r = self.modules["generators"](fixed, 1 - c_org)
        edited = (fixed + r).clamp(-1, 1)
        return [[fixed[i], edited[i], r[i].abs() * 2 - 1] for i in range(len(fixed))]

    def weights(self):
        return {"generators": self.modules["generators"].state_dict()}


PLUGIN = EditorPlugin("resgan", ResganEditor, ResganTrainer,
                      "ResGAN-style: two generators add / remove a residual image, with dual learning (Shen & Liu, CVPR 2017)")
