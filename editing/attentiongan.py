"""AttentionGAN (Tang et al., "AttentionGAN: Unpaired Image-to-Image Translation using
Attention-Guided GANs", TNNLS 2021), generation scheme II, conditioned on the target attribute.

Generator (scheme II): a shared encoder G_E feeds a content decoder G_C, which proposes
n - 1 content images, and an attention decoder G_A, which gives n - 1 foreground masks and
one background mask, normalised per pixel by a softmax across the n masks:

    h = G_E([x, c])        C^f = tanh(G_C(h))_f    A = softmax(G_A(h)) over f = 1..n-1, b
    G(x, c) = Σ_f C^f * A^f + x * A^b

so every output pixel is a convex mix of the n - 1 proposals and the input. The mask the
editor reports is the foreground share 1 - A^b. Losses, with c = 1 - c^g the flipped label:

    D:  L_src = -E[D_src(x)] + E[D_src(G(x, c))] + λgp E[(||∇D_src(x̃)||2 - 1)^2]   (WGAN-GP)
        L_cls = E[-log D_cls(c^g | x)]
    G:  L_adv = -E[D_src(G(x, c))]            L_cls = E[-log D_cls(c | G(x, c))]
        L_cyc = ||x - G(G(x, c), c^g)||1      L_id = ||x - G(x, c^g)||1
        L_tv  = TV(A)                         L_pix = ||G(x, c) - x||1
        L_G = L_adv + λcls L_cls + λdual L_cyc + λidentity L_id + λtv L_tv + λpixel L_pix

The source (the slides in the reference seeds and the released code) translates between two
unpaired domains with two generators G, F and two discriminators, a least-squares GAN loss,
L = L_GAN + λcycle L_cycle + λid L_id (λcycle = 10, λid = 0.5 λcycle; identity on the other
domain: G(y) ≈ y), ngf 64, 9 residual blocks and n = 10. Deviations:
  * One generator for both directions, conditioned on the target attribute as a fourth input
    channel, with SaGAN's critic: WGAN-GP and an attribute-classification head (`gradient_penalty`,
    networks' Discriminator). So the adversarial and attribute losses, λgp, λcls, n_critic, the
    cycle weight (λdual) and the identity weight (λidentity, on G(x, c^g) ≈ x, the conditional
    form of G(y) ≈ y) are SaGAN's (`config.sagan`); the widths are too, so every editor in a profile
    trains at the same size.
  * Encoder and decoders are the halves of networks' EncoderDecoder (4x4 stride-2 convs, zero
    padding) instead of the released ResNet generator; the attention head is its 7x7 output conv
    (the released code uses a 1x1 conv) with the sigmoid replaced by the softmax.
  * TV regularisation (used in scheme I against masks saturating to 1; `params.lambda_tv`) is on all
    n masks of G(x, c), per-pixel means (sagan.total_variation) instead of sums. The source weighs the
    sum over a 256x256 mask by 1e-6; per pixel that is 1e-6 * 256^2 ≈ 0.066, the default here.
  * The pixel loss ||G(x) - x||1 the slides list (from scheme I) is `params.lambda_pixel`, off by
    default: scheme II's objective does not include it, and the identity and cycle losses already
    tie the output to the input.
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
from editing.losses import critic_steps, flipped, total_variation
from editing.networks import Discriminator, EncoderDecoder
from pipeline.precision import amp as _amp


class AttentionGanParams(BaseModel):
    """`editor.params` for attentiongan."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    n: int = Field(10, ge=2, description="attention masks including the background one (paper: 10)")
    lambda_tv: float = Field(0.066, ge=0, description="TV on the masks, per-pixel mean (the source's 1e-6 on sums at 256 px)")
    lambda_pixel: float = Field(0.0, ge=0, description="L1 between the edit and its input (scheme I's pixel loss; off)")


def parse_params(params: dict) -> AttentionGanParams:
    """`editor.params` -> AttentionGanParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(AttentionGanParams, params, "attentiongan")


class AttentionGenerator(nn.Module):
    """G(x, c) = Σ_f C^f * A^f + x * A^b; returns (G(x, c), A), A with the background mask last."""

    def __init__(self, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4, n: int = 10):
        super().__init__()
        if n < 2:
            raise ValueError(f"AttentionGAN needs n >= 2 masks (foreground + background), not {n}")
        self.n = n
        # EncoderDecoder.main is: stem and `downsamples` stride-2 convs (3 layers each), the residual
        # blocks, `downsamples` deconvs (3 layers each), the output conv and its activation.
        stem = 3 * (downsamples + 1)
        self.encoder = EncoderDecoder(4, 1, conv_dim, downsamples, res_blocks).main[: stem + res_blocks]
        self.content = EncoderDecoder(1, 3 * (n - 1), conv_dim, downsamples, 0, "tanh").main[stem:]
        self.attention = EncoderDecoder(1, n, conv_dim, downsamples, 0).main[stem:-1]  # logits; softmax below

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cmap = c.to(x.dtype).view(-1, 1, 1, 1).expand(-1, 1, x.shape[2], x.shape[3])
        h = self.encoder(torch.cat([x, cmap], dim=1))
        content = self.content(h).unflatten(1, (self.n - 1, 3))  # B x (n-1) x 3 x H x W
        attention = self.attention(h).softmax(dim=1)  # B x n x H x W, sums to one per pixel
        out = (content * attention[:, :-1, None]).sum(dim=1) + x * attention[:, -1:]
        return out, attention


def foreground(attention: torch.Tensor) -> torch.Tensor:
    """The share of each pixel taken from the content proposals: 1 - A^b, Bx1xHxW in [0, 1]."""
    return (1 - attention[:, -1:]).clamp(0, 1)


def attentiongan_iteration(g: AttentionGenerator, d: Discriminator, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                           s, p: AttentionGanParams, n_critic: int, rng: torch.Generator,
                           autocast: torch.dtype | None = None) -> dict[str, float]:
    """`n_critic` critic updates, then one generator update; `s` = SaganParams, `p` = AttentionGanParams."""
    amp = _amp(autocast, next(g.parameters()).device.type)
    # 1. Train the critic n_critic times, each on a fresh batch (as SaGAN).
    (x, c_org, c_trg), (d_adv, d_cls, d_gp) = critic_steps(flipped(lambda x, c: g(x, c)[0]), d, opt_d, draw, s, n_critic, rng, amp)

    # 2. Train the generator on the last batch: the edit and the identity pass share one forward.
    with amp:
        out, attention = g(torch.cat([x, x]), torch.cat([c_trg, c_org]))
        fake, same, att = out[: len(x)], out[len(x):], attention[: len(x)].float()
        rec, _ = g(fake, c_org)
        src_fake, cls_fake = d(fake)
        g_adv = -src_fake.float().mean()
        g_cls = F.binary_cross_entropy_with_logits(cls_fake.float(), c_trg)
        g_cyc = (x - rec.float()).abs().mean()
        g_id = (x - same.float()).abs().mean()
        g_tv = total_variation(att)
        g_pix = (fake.float() - x).abs().mean()
        g_loss = (g_adv + s.lambda_cls * g_cls + s.lambda_dual * g_cyc + s.lambda_identity * g_id
                  + p.lambda_tv * g_tv + p.lambda_pixel * g_pix)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), "g_adv": g_adv.item(), "g_cls": g_cls.item(),
            "g_cyc": g_cyc.item(), "g_id": g_id.item(), "g_tv": g_tv.item(), "g_pix": g_pix.item(),
            "mask_mean": foreground(att).mean().item()}


class AttentionGanEditor(GanEditor):
    name = "attentiongan"
    version = "1"
    has_mask = True
    title = "AttentionGAN"

    def __init__(self, generator: AttentionGenerator, attribute: str, image_size: int, checkpoint_id: str, device: torch.device,
                 precision: str = "auto"):
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.generator = self.place(generator)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "AttentionGanEditor":
        return cls.load_network(directory, AttentionGenerator, "generator", device, precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        out, attention = self.generator(self.batch(images, target), target.to(self.device, self.dtype))
        return EditResult(out.float().clamp_(-1, 1).cpu(), foreground(attention.float()).cpu())


class AttentionGanTrainer(GanTrainer):
    """Trains one AttentionGAN for one attribute; the loop (resume, batches, logs, samples) is `GanTrainer`'s."""

    editor_name = "attentiongan"
    editor_version = AttentionGanEditor.version
    editor_class = AttentionGanEditor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = parse_params(self.config.params)  # fail before any data is read

    def build(self):
        s = self.config.sagan
        arch = {**self.generator_arch(), "n": self.params.n}
        g = AttentionGenerator(**arch)
        d = Discriminator(self.image_size, s.d_conv_dim, s.d_layers)
        self.initialised(g, d)
        return arch, {"generator": g, "discriminator": d}, {"opt_g": self.adam(g), "opt_d": self.adam(d)}

    def iteration(self, draw, rng, autocast):
        m, o = self.modules, self.optimizers
        return attentiongan_iteration(m["generator"], m["discriminator"], o["opt_g"], o["opt_d"], draw, self.config.sagan,
                                      self.params, self.config.n_critic, rng, autocast)

    def log_line(self, h):
        return (f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f} cls {h['g_cls']:.3f} "
                f"cyc {h['g_cyc']:.3f} id {h['g_id']:.3f} tv {h['g_tv']:.4f} pix {h['g_pix']:.3f} mask {h['mask_mean']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | edited (flipped label) | foreground mask 1 - A^b | residual, one face per row."""
        edited, attention = self.modules["generator"](fixed, 1 - c_org)
        mask = foreground(attention)
        return [[fixed[i], edited[i], mask[i], (edited[i] - fixed[i]).abs() * 2 - 1] for i in range(len(fixed))]

    def weights(self):
        return {"generator": self.modules["generator"].state_dict()}


PLUGIN = EditorPlugin("attentiongan", AttentionGanEditor, AttentionGanTrainer,
                      "AttentionGAN scheme II: n-1 content proposals mixed by n softmax attention masks (Tang et al., TNNLS 2021)")
