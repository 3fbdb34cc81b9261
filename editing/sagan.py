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
  * `cls_on_edits`: D's attribute head also learns, on the edited images, their source's label
    (eq. 2 applied to Î with c^g). The paper trains that head on real images only, and then the
    generator can satisfy eq. 9 with a faint change that only this discriminator reads as the
    attribute (measured: `faceaug editors probe`, docs/editors.md).
  * `balance_attribute`: draw half of each batch from images with the attribute
    (CelebA has glasses on 6.5% of images, so uniform batches rarely practise removal).
  * The attribute head outputs a logit and the sigmoid sits in the loss.
Not specified by the paper and chosen here: the number of iterations (config), and
that each D update sees a fresh batch with G updated on the last one (as StarGAN does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from editing._gan import CHECKPOINT, WEIGHTS, GanEditor, GanTrainer, amp as _amp  # noqa: F401 (CHECKPOINT, WEIGHTS re-exported)
from editing.base import EditResult
from editing.registry import EditorPlugin
from editing.sagan_nets import Discriminator, Generator


def gradient_penalty(d_src: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP: (||∇ D(Ĩ)||2 - 1)^2 with Ĩ uniform on the segment between real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = d_src(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    return (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().mean() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().mean()


def critic_update(d, opt_d, x: torch.Tensor, c_org: torch.Tensor, fake: torch.Tensor, s, rng: torch.Generator, amp):
    """One discriminator update on real `x` (labels `c_org`) and `fake`, edited from `x` (no grad): WGAN-GP (eq. 12)
    plus the attribute loss on the real images (eq. 2) [and on the edits toward c_org if s.cls_on_edits],
    weighted by `s` (SaganParams). Returns (adv, cls, gp)."""
    with amp:
        src, cls = d(torch.cat([x, fake]))  # one pass over real and fake (D has no batch statistics)
        d_adv = -src[: len(x)].float().mean() + src[len(x):].float().mean()
        d_cls = F.binary_cross_entropy_with_logits(cls[: len(x)].float(), c_org)
        d_gp = gradient_penalty(lambda v: d(v)[0], x, fake.float(), rng)
        d_loss = d_adv + s.lambda_gp * d_gp + s.lambda_cls * d_cls
        if s.cls_on_edits:  # not in the paper: an edit keeps its source's label for D's attribute head
            d_loss = d_loss + s.lambda_cls * s.cls_on_edits * F.binary_cross_entropy_with_logits(cls[len(x):].float(), c_org)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return d_adv, d_cls, d_gp


def critic_steps(edit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], d: Discriminator, opt_d,
                 draw: Callable[[], tuple[torch.Tensor, torch.Tensor]], s, n_critic: int, rng: torch.Generator, amp):
    """`n_critic` critic updates, each on a fresh batch edited toward its flipped label by `edit(x, c_trg)`
    (no generator gradients). Returns the last batch (x, c_org, c_trg), on which the generator then
    trains, and its losses (d_adv, d_cls, d_gp)."""
    for _ in range(n_critic):
        x, c_org = draw()
        c_trg = 1 - c_org
        with amp, torch.no_grad():
            fake = edit(x, c_trg)
        losses = critic_update(d, opt_d, x, c_org, fake, s, rng, amp)
    return (x, c_org, c_trg), losses


def with_mask_penalty(g_loss: torch.Tensor, s, mask: torch.Tensor) -> torch.Tensor:
    """`g_loss` plus the optional mask regularisers (not in the paper; off unless mask_l1 / mask_tv > 0)."""
    if s.mask_l1:
        g_loss = g_loss + s.mask_l1 * mask.float().mean()
    if s.mask_tv:
        g_loss = g_loss + s.mask_tv * total_variation(mask.float())
    return g_loss


def sagan_iteration(g: Generator, d: Discriminator, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                    s, n_critic: int, rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """One SaGAN iteration: `n_critic` discriminator updates, then one generator update.

    `draw()` returns a fresh (images, labels) batch; `s` holds the loss weights (SaganParams).
    """
    amp = _amp(autocast, next(g.parameters()).device.type)
    # 1. Train the discriminator n_critic times, each on a fresh batch.
    (x, c_org, c_trg), (d_adv, d_cls, d_gp) = critic_steps(lambda x, c: g(x, c)[0], d, opt_d, draw, s, n_critic, rng, amp)

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
        g_loss = with_mask_penalty(g_adv + s.lambda_cls * g_cls + s.lambda_dual * g_dual + s.lambda_identity * g_id, s, mask)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), "g_adv": g_adv.item(), "g_cls": g_cls.item(),
            "g_dual": g_dual.item(), "g_id": g_id.item(), "mask_mean": mask.float().mean().item()}


class SaganEditor(GanEditor):
    name = "sagan"
    version = "1"
    has_mask = True
    title = "SaGAN"
    generator_class: type[Generator] = Generator

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
        return sagan_iteration(m["generator"], m["discriminator"], o["opt_g"], o["opt_d"], draw, self.config.sagan,
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
