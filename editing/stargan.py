"""StarGAN-style whole-image editor: SaGAN with the spatial attention taken away.

The SaGAN paper's point of comparison for what spatial attention buys. The generator is
SaGAN's attribute manipulation network alone, and its output is the edited image:

    SaGAN:   G(I, c) = AMN(I, c) * SAN(I) + I * (1 - SAN(I))     (SaGAN eq. 7)
    here:    G(I, c) = AMN(I, c)                                   (SAN(I) = 1 everywhere)

so every pixel is regenerated, including those the attribute does not concern. Everything
else is SaGAN's, so that the comparison isolates the mask: the same AMN (image + one
attribute channel, Tanh), the same WGAN-GP discriminator with an attribute head, the same
losses and schedule, run by the same code (`editing.sagan.sagan_iteration`):

    D:  L_src = -E[D_src(I)] + E[D_src(Î)] + λgp E[(||∇D_src(Ĩ)||2 - 1)^2],   L_cls = E[-log D_cls(c^g | I)]
    G:  L_adv = -E[D_src(Î)],   L_cls = E[-log D_cls(c | Î)],
        L_rec = λ1 ||I - G(G(I, c), c^g)||1 + λ2 ||I - G(I, c^g)||1

with Î = G(I, c), c = 1 - c^g, and the weights, optimiser, batch and n_critic of
`config.sagan` / `config` exactly as SaGAN uses them.

What StarGAN itself (Choi et al., CVPR 2018) does differently, and is deliberately not done here:
  * one reconstruction term, λrec = 10 on ||I - G(G(I, c), c^g)||1, and no identity term
    (here SaGAN's dual and identity terms, λ1 = 20 and λ2 = 100 in the paper profile);
  * one generator and one discriminator for many attributes, D's PatchGAN having a
    multi-domain classification head (here one binary editor per attribute, with SaGAN's
    discriminator: the same PatchGAN shape, one attribute logit);
  * Adam(1e-4, β = (0.5, 0.999)) decayed linearly to 0 over the second half of training, and
    five D updates per G update (here SaGAN's optimiser and schedule from the config).
The mask options `sagan.mask_l1`, `mask_tv` and `identity_trains_mask` have nothing to act on
(the mask is a constant 1: L1 adds a constant, TV zero); `mask_mean` in the logs is always 1.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from editing.base import EditResult, editor_params
from editing.registry import EditorPlugin
from editing.sagan import Generator, SaganEditor, SaganTrainer


class StarganParams(BaseModel):
    """The editor has no parameters of its own: any key in `editor.params` is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_params(params: dict) -> StarganParams:
    """`editor.params` -> StarganParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(StarganParams, params, "stargan")


class UnmaskedGenerator(Generator):
    """SaGAN's generator with no SAN: the attention is 1 everywhere, so G(I, c) = AMN(I, c) exactly."""

    def __init__(self, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4):
        super().__init__(conv_dim, downsamples, res_blocks)
        del self.san  # nothing to attend with: no parameters, nothing in the state dict

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x[:, :1])


class StarganEditor(SaganEditor):
    name = "stargan"
    version = "1"
    has_mask = False
    title = "StarGAN-style editor"
    generator_class = UnmaskedGenerator

    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        return EditResult(super().edit(images, target).images)  # the constant mask says nothing: none


class StarganTrainer(SaganTrainer):
    """SaGAN's trainer (losses, schedule, loop, build) with the unmasked generator."""

    editor_name = "stargan"
    editor_version = StarganEditor.version
    editor_class = StarganEditor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        parse_params(self.config.params)

    def log_line(self, h):
        return (f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f} "
                f"cls {h['g_cls']:.3f} dual {h['g_dual']:.3f} id {h['g_id']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | edited (flipped label) | residual, one face per row."""
        edited, _ = self.modules["generator"](fixed, 1 - c_org)
        return [[fixed[i], edited[i], (edited[i] - fixed[i]).abs() * 2 - 1] for i in range(len(fixed))]


PLUGIN = EditorPlugin("stargan", StarganEditor, StarganTrainer,
                      "StarGAN-style: SaGAN's generator without the attention mask, the whole image regenerated (SaGAN's baseline)")
