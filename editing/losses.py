"""Losses and update steps the GAN editors share (SaGAN's, as the other editors reuse its critic).

    D:  L_src = -E[D_src(I)] + E[D_src(Î)] + λgp E[(||∇D_src(Ĩ)||2 - 1)^2]      (SaGAN eq. 12, WGAN-GP)
        L_cls = E[-log D_cls(c^g | I)]                                         (eq. 2)

`critic_update` is one discriminator step; `critic_steps` runs `n_critic` of them, each on a fresh
batch edited by the caller's generator, and hands the last batch to the generator step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def gradient_penalty(d_src: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP: (||∇ D(Ĩ)||2 - 1)^2 with Ĩ uniform on the segment between real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = d_src(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    return (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().mean() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().mean()


def instance_noise(s, rng: torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the discriminator sees of an image: with `s.d_noise` > 0 (not in the paper; Sønderby et al. 2017's
    "instance noise"), the image plus Gaussian noise of that standard deviation, drawn from `rng` (so a resumed
    run draws the same noise); otherwise the image itself."""
    sigma = getattr(s, "d_noise", 0.0)
    if not sigma:
        return lambda v: v
    if rng is None:
        raise ValueError("d_noise > 0 needs the training's random generator (rng) to draw the noise")
    return lambda v: v + sigma * torch.randn(v.shape, generator=rng).to(device=v.device, dtype=v.dtype)


def critic_update(d, opt_d, x: torch.Tensor, labels: torch.Tensor, fake: torch.Tensor, s, rng: torch.Generator, amp,
                  cls_scale: float = 1.0):
    """One discriminator update on real `x` (its labels: N values, or N x K for a K-attribute head) and `fake`,
    edited from `x` (no grad): WGAN-GP (eq. 12) plus the attribute loss on the real images (eq. 2) [and on the
    edits toward their source labels if s.cls_on_edits], weighted by `s` (SaganParams); `cls_scale` multiplies
    the attribute loss (a K-attribute head sums over its K logits: cls_scale = K). Returns (adv, cls, gp)."""
    seen = instance_noise(s, rng)
    x, fake = seen(x), seen(fake)
    with amp:
        src, cls = d(torch.cat([x, fake]))  # one pass over real and fake (D has no batch statistics)
        d_adv = -src[: len(x)].float().mean() + src[len(x):].float().mean()
        d_cls = cls_scale * F.binary_cross_entropy_with_logits(cls[: len(x)].float(), labels)
        d_gp = gradient_penalty(lambda v: d(v)[0], x, fake.float(), rng)
        d_loss = d_adv + s.lambda_gp * d_gp + s.lambda_cls * d_cls
        if s.cls_on_edits:  # not in the paper: an edit keeps its source's label for D's attribute head
            d_loss = d_loss + s.lambda_cls * s.cls_on_edits * cls_scale * F.binary_cross_entropy_with_logits(cls[len(x):].float(), labels)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return d_adv, d_cls, d_gp


def critic_steps(edit: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]], d, opt_d,
                 draw: Callable[[], tuple[torch.Tensor, torch.Tensor]], s, n_critic: int, rng: torch.Generator, amp,
                 cls_scale: float = 1.0):
    """`n_critic` critic updates, each on a fresh batch from `draw()`. `edit(x, labels)` returns the batch
    edited by the generator (no gradients are needed) and whatever the generator step needs to repeat the
    edit (e.g. the flipped labels). Returns ((x, labels, that), (d_adv, d_cls, d_gp)) of the last batch,
    on which the generator then trains."""
    for _ in range(n_critic):
        x, labels = draw()
        with amp, torch.no_grad():
            fake, chosen = edit(x, labels)
        losses = critic_update(d, opt_d, x, labels, fake, s, rng, amp, cls_scale)
    return (x, labels, chosen), losses


def flipped(edit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """The `critic_steps` edit of a single-attribute editor: each image toward its flipped label."""
    def run(x: torch.Tensor, c_org: torch.Tensor):
        c_trg = 1 - c_org
        return edit(x, c_trg), c_trg
    return run


def with_mask_penalty(g_loss: torch.Tensor, s, mask: torch.Tensor) -> torch.Tensor:
    """`g_loss` plus the optional mask regularisers (not in the paper; off unless mask_l1 / mask_tv > 0)."""
    if s.mask_l1:
        g_loss = g_loss + s.mask_l1 * mask.float().mean()
    if s.mask_tv:
        g_loss = g_loss + s.mask_tv * total_variation(mask.float())
    return g_loss


def attention_generator_losses(attend: Callable, manipulate: Callable, regenerate: Callable, d, x: torch.Tensor,
                               c_org: torch.Tensor, c_trg: torch.Tensor, s, cls_logits: Callable[[torch.Tensor], torch.Tensor],
                               rng: torch.Generator | None = None):
    """SaGAN's generator losses (eqs. 9, 10, 13) for one batch, shared by the single- and multi-attribute models.

    `attend(x)` -> mask; `manipulate(x2, t2)` -> the AMN's output for the doubled batch [x, x] toward [c_trg, c_org];
    `regenerate(image, t)` -> G(image, t) (the dual reconstruction); `cls_logits(cls)` picks the edited attribute's
    logits from D's head. SAN does not see the target, so one mask serves G(I, c) and G(I, c^g). `rng` draws
    the discriminator's instance noise (`instance_noise`; needed only when s.d_noise > 0).
    Returns (total loss without mask penalties, mask, parts)."""
    mask = attend(x)
    manip = manipulate(torch.cat([x, x]), torch.cat([c_trg, c_org]))
    blend = lambda edited, m: edited * m + x * (1 - m)  # noqa: E731  (eq. 7)
    fake = blend(manip[: len(x)], mask)
    # Identity loss (eq. 10, λ2): with identity_trains_mask=False it cannot be met by shutting the mask.
    same = blend(manip[len(x):], mask if s.identity_trains_mask else mask.detach())
    rec = regenerate(fake, c_org)
    src_fake, cls_fake = d(instance_noise(s, rng)(fake))
    parts = {
        "g_adv": -src_fake.float().mean(),
        "g_cls": F.binary_cross_entropy_with_logits(cls_logits(cls_fake.float()), c_trg),
        "g_dual": (x - rec.float()).abs().mean(),
        "g_id": (x - same.float()).abs().mean(),
    }
    total = parts["g_adv"] + s.lambda_cls * parts["g_cls"] + s.lambda_dual * parts["g_dual"] + s.lambda_identity * parts["g_id"]
    return total, mask, parts, cls_fake
