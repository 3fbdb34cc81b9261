"""SaGAN (Zhang et al., ECCV 2018): one editor per attribute, trained with WGAN-GP.

The generator is below; its encoder-decoders and the discriminator are `editing/networks.py`
(Tables 1-2), the shared critic step `editing/losses.py`. The losses, numbered as in the paper:

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
  * `cls_on_edits`: D's attribute head also learns, on the edited images, their source's label
    (eq. 2 applied to Î with c^g). The paper trains that head on real images only, and then the
    generator can satisfy eq. 9 with a faint change that only this discriminator reads as the
    attribute (measured: `faceaug editors probe`, docs/editors.md). `cls_on_edits_warmup` delays it
    and ramps it in, so the mask forms on the attribute before the stricter head applies.
  * `identity_trains_mask: false`: the identity loss (λ2) trains the AMN only, not the mask.
  * `d_noise`: Gaussian "instance noise" on every image D sees (real and edited, in the D and G
    steps), so D's attribute head cannot take a change fainter than the noise for the attribute.
  * Checkpoint selection on validation faces (`editor.select_every`, `editing.selection`); the paper
    keeps the last iterate.
  * `balance_attribute`: draw half of each batch from images with the attribute
    (CelebA has glasses on 6.5% of images, so uniform batches rarely practise removal).
  * The attribute head outputs a logit and the sigmoid sits in the loss.
Not specified by the paper and chosen here: the number of iterations (config), and
that each D update sees a fresh batch with G updated on the last one (as StarGAN does).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from editing.base import EditResult
from editing.gan import GanEditor, GanTrainer
from editing.losses import attention_generator_losses, critic_steps, flipped, with_mask_penalty
from editing.networks import Discriminator, EncoderDecoder
from editing.registry import EditorPlugin
from pipeline.precision import amp as _amp


class Generator(nn.Module):
    """G(I, c) = AMN(I, c) * SAN(I) + I * (1 - SAN(I))   (eq. 7)."""

    def __init__(self, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4):
        super().__init__()
        self.amn = EncoderDecoder(4, 3, conv_dim, downsamples, res_blocks, "tanh")
        self.san = EncoderDecoder(3, 1, conv_dim, downsamples, res_blocks, "sigmoid")

    def manipulate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """AMN: the image with the attribute value c as a fourth, constant channel."""
        cmap = c.to(x.dtype).view(-1, 1, 1, 1).expand(-1, 1, x.shape[2], x.shape[3])
        return self.amn(torch.cat([x, cmap], dim=1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        return self.san(x)

    @staticmethod
    def blend(x: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return edited * mask + x * (1 - mask)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.attend(x)
        return self.blend(x, self.manipulate(x, c), mask), mask


def sagan_iteration(g: Generator, d: Discriminator, opt_g, opt_d, draw, s, n_critic: int, rng: torch.Generator,
                    autocast: torch.dtype | None = None) -> dict[str, float]:
    """One SaGAN iteration: `n_critic` discriminator updates, then one generator update.

    `draw()` returns a fresh (images, labels) batch; `s` holds the loss weights (SaganParams).
    """
    amp = _amp(autocast, next(g.parameters()).device.type)
    # 1. Train the discriminator n_critic times, each on a fresh batch edited toward its flipped label.
    (x, c_org, c_trg), (d_adv, d_cls, d_gp) = critic_steps(flipped(lambda x, c: g(x, c)[0]), d, opt_d, draw, s, n_critic, rng, amp)

    # 2. Train the generator on the last batch (eqs. 9, 10, 13; the AMN runs once on the stacked batch).
    with amp:
        g_loss, mask, parts, _ = attention_generator_losses(g.attend, g.manipulate, lambda v, t: g(v, t)[0], d, x, c_org, c_trg,
                                                            s, lambda cls: cls, rng)
        g_loss = with_mask_penalty(g_loss, s, mask)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), **{k: v.item() for k, v in parts.items()},
            "mask_mean": mask.float().mean().item()}


def scheduled(s, step: int):
    """The loss weights at iteration `step` (from 0): `cls_on_edits` waits `cls_on_edits_warmup` iterations, then
    ramps linearly to its full weight over as many again (not in the paper; the same weights without a warm-up)."""
    warmup = getattr(s, "cls_on_edits_warmup", 0)
    if not warmup or not s.cls_on_edits:
        return s
    ramp = min(1.0, max(0.0, (step - warmup) / warmup))
    return s.model_copy(update={"cls_on_edits": s.cls_on_edits * ramp})


class SaganEditor(GanEditor):
    name = "sagan"
    version = "1"
    has_mask = True
    title = "SaGAN"
    generator_class: type[nn.Module] = Generator

    def __init__(self, generator: Generator, attribute: str, image_size: int, checkpoint_id: str, device: torch.device,
                 precision: str = "auto"):
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.generator = self.place(generator)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "SaganEditor":
        return cls.load_network(directory, cls.generator_class, "generator", device, precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        out, mask = self.generator(self.batch(images, target), target.to(self.device, self.dtype))
        return EditResult(out.float().clamp_(-1, 1).cpu(), mask.float().cpu())


class SaganTrainer(GanTrainer):
    """Trains one SaGAN for one attribute; the loop (resume, batches, logs, samples) is `GanTrainer`'s."""

    editor_name = "sagan"
    editor_version = SaganEditor.version
    editor_class = SaganEditor  # its generator_class is what build() trains

    def build(self):
        s = self.config.sagan
        arch = self.generator_arch()
        g = self.editor_class.generator_class(**arch)
        d = Discriminator(self.image_size, s.d_conv_dim, s.d_layers)
        self.initialised(g, d)
        return arch, {"generator": g, "discriminator": d}, {"opt_g": self.adam(g), "opt_d": self.adam(d)}

    def iteration(self, draw, rng, autocast):
        m, o = self.modules, self.optimizers
        return sagan_iteration(m["generator"], m["discriminator"], o["opt_g"], o["opt_d"], draw, scheduled(self.config.sagan, self.step),
                               self.config.n_critic, rng, autocast)

    def log_line(self, h):
        return (f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f} "
                f"cls {h['g_cls']:.3f} dual {h['g_dual']:.3f} id {h['g_id']:.3f} mask {h['mask_mean']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | edited (flipped label) | mask | residual, one face per row (the paper's Fig. 3)."""
        edited, mask = self.modules["generator"](fixed, 1 - c_org)
        return [[fixed[i], edited[i], mask[i], (edited[i] - fixed[i]).abs() * 2 - 1] for i in range(len(fixed))]

    def weights(self):
        return {"generator": self.modules["generator"].state_dict()}


PLUGIN = EditorPlugin("sagan", SaganEditor, SaganTrainer, "SaGAN: attribute manipulation + spatial attention (Zhang et al., ECCV 2018)")
