"""CycleGAN (Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017): one unconditional generator per direction.

Domain A is the faces without the attribute, domain B the faces with it. G_add: A -> B and
G_remove: B -> A, with a discriminator per domain (D_B judges G_add's output, D_A G_remove's).
Least-squares GAN losses (section 4 / 7.1 of the paper):

    D:  L_D = ½ E[(D_B(b) - 1)^2] + ½ E[D_B(pool(G_add(a)))^2]  (+ the same for D_A)
    G:  L_GAN = E[(D_B(G_add(a)) - 1)^2] + E[(D_A(G_remove(b)) - 1)^2]
        L_cyc = ||G_remove(G_add(a)) - a||1 + ||G_add(G_remove(b)) - b||1
        L_id  = ||G_add(b) - b||1 + ||G_remove(a) - a||1
        L_G = L_GAN + λcyc L_cyc + λid λcyc L_id

with λcyc = 10 and λid = 0.5 (the paper's identity weight 0.5 λcyc), `params.lambda_cycle` and
`params.lambda_identity`. The discriminators see a fake from a history of the last 50 generated
images half of the time (`params.pool_size`, Shrivastava et al.); the history is a module buffer,
so it is in the checkpoint and a resumed run continues exactly. G and D are updated once each per
iteration, G first, as in the paper, with one Adam over both generators and one over both
discriminators. Editing routes each image by its target: 1 -> G_add, 0 -> G_remove. The identity
loss is what makes G_add leave a face that already has the attribute (nearly) unchanged.

Deviations from the paper:
  * Generators are networks' EncoderDecoder (image in, tanh out; 4x4 stride-2 convs, zero
    padding) at `config.sagan`'s width, instead of the ResNet with reflection padding and 9 (256 px)
    or 6 (128 px) blocks; every editor in a profile trains at the same size.
  * Discriminators are networks' Discriminator conv stack with its real/fake head, a patch map of
    (image_size / 2^d_layers)^2 scores (LeakyReLU 0.01, no normalisation) instead of the 70x70
    PatchGAN (3 stride-2 convs with InstanceNorm, LeakyReLU 0.2). The attribute head is not used.
  * Batches come from the training loop, half from each domain (`requires_balance`), instead of
    batch size 1; `config.n_critic` and `config.sagan`'s loss weights are not used.
  * The learning rate is constant (the paper decays it linearly to zero over the second half).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from editing.gan import GanEditor, GanTrainer
from editing.base import EditResult, editor_params
from editing.registry import EditorPlugin
from editing.networks import Discriminator, EncoderDecoder
from pipeline.precision import amp as _amp


class CycleGanParams(BaseModel):
    """`editor.params` for cyclegan."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_cycle: float = Field(10.0, ge=0, description="λcyc, cycle consistency (paper: 10)")
    lambda_identity: float = Field(0.5, ge=0, description="identity loss weight as a fraction of λcyc (paper: 0.5)")
    pool_size: int = Field(50, ge=0, description="history of generated images shown to D (paper: 50; 0 = none)")


def parse_params(params: dict) -> CycleGanParams:
    """`editor.params` -> CycleGanParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(CycleGanParams, params, "cyclegan")


def generator(conv_dim: int, downsamples: int, res_blocks: int) -> EncoderDecoder:
    return EncoderDecoder(3, 3, conv_dim, downsamples, res_blocks, "tanh")


def patch_discriminator(image_size: int, conv_dim: int, layers: int) -> nn.Sequential:
    """networks' Discriminator without its attribute head: x -> a map of real/fake scores."""
    d = Discriminator(image_size, conv_dim, layers)
    return nn.Sequential(d.main, d.src)


class HistoryBuffer(nn.Module):
    """CycleGAN's image pool: fills with the first `size` fakes; afterwards each new fake is, with
    probability ½, swapped for a random stored one. The images are buffers, so they are checkpointed."""

    def __init__(self, size: int, image_size: int):
        super().__init__()
        self.register_buffer("images", torch.zeros(size, 3, image_size, image_size))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        size = self.images.shape[0]
        if size == 0:
            return fakes
        out = []
        for fake in fakes.float():
            if self.count < size:
                self.images[self.count] = fake
                self.count += 1
                out.append(fake)
            elif torch.rand((), generator=rng) < 0.5:
                i = int(torch.randint(size, (), generator=rng))
                out.append(self.images[i].clone())
                self.images[i] = fake
            else:
                out.append(fake)
        return torch.stack(out)


def translate(g_add: nn.Module, g_remove: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each image through G_add (target 1) or G_remove (target 0)."""
    add = target > 0.5
    out = torch.empty_like(x)
    if add.any():
        out[add] = g_add(x[add])
    if not add.all():
        out[~add] = g_remove(x[~add])
    return out


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), 1.0 if real else 0.0))


def cyclegan_iteration(m: dict[str, nn.Module], opt_g, opt_d, x: torch.Tensor, c: torch.Tensor, p: CycleGanParams,
                       rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """One generator update, then one discriminator update, on a batch holding both domains."""
    amp = _amp(autocast, x.device.type)
    a, b = x[c < 0.5], x[c > 0.5]  # without / with the attribute
    g_add, g_remove, d_a, d_b = m["g_add"], m["g_remove"], m["d_without"], m["d_with"]
    # 1. Train both generators (the discriminators are held fixed: no gradients for them).
    for d in (d_a, d_b):
        d.requires_grad_(False)
    with amp:
        fake_b, idt_b = g_add(torch.cat([a, b])).split([len(a), len(b)])
        fake_a, idt_a = g_remove(torch.cat([b, a])).split([len(b), len(a)])
        rec_a, rec_b = g_remove(fake_b), g_add(fake_a)
        g_adv = _lsgan(d_b(fake_b), True) + _lsgan(d_a(fake_a), True)
        g_cyc = (rec_a.float() - a).abs().mean() + (rec_b.float() - b).abs().mean()
        g_id = (idt_b.float() - b).abs().mean() + (idt_a.float() - a).abs().mean()
        g_loss = g_adv + p.lambda_cycle * g_cyc + p.lambda_identity * p.lambda_cycle * g_id
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    for d in (d_a, d_b):
        d.requires_grad_(True)

    # 2. Train both discriminators on real images and fakes from the history.
    pool_b = m["pool_with"].query(fake_b.detach(), rng)
    pool_a = m["pool_without"].query(fake_a.detach(), rng)
    with amp:
        d_with = 0.5 * (_lsgan(d_b(b), True) + _lsgan(d_b(pool_b), False))
        d_without = 0.5 * (_lsgan(d_a(a), True) + _lsgan(d_a(pool_a), False))
    opt_d.zero_grad(set_to_none=True)
    (d_with + d_without).backward()
    opt_d.step()
    return {"d_with": d_with.item(), "d_without": d_without.item(), "g_adv": g_adv.item(), "g_cyc": g_cyc.item(),
            "g_id": g_id.item()}


class CycleGanEditor(GanEditor):
    name = "cyclegan"
    version = "1"
    has_mask = False
    title = "CycleGAN"

    def __init__(self, g_add: nn.Module, g_remove: nn.Module, attribute: str, image_size: int, checkpoint_id: str,
                 device: torch.device, precision: str = "auto"):
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.g_add, self.g_remove = self.place(g_add), self.place(g_remove)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "CycleGanEditor":
        state, checkpoint_id = cls.read_weights(directory)
        g_add, g_remove = generator(**state["arch"]), generator(**state["arch"])
        g_add.load_state_dict(state["g_add"])
        g_remove.load_state_dict(state["g_remove"])
        return cls(g_add, g_remove, state["attribute"], state["image_size"], checkpoint_id, torch.device(device), precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        out = translate(self.g_add, self.g_remove, self.batch(images, target), target.to(self.device))
        return EditResult(out.float().clamp_(-1, 1).cpu())


class CycleGanTrainer(GanTrainer):
    """Trains G_add, G_remove and their discriminators for one attribute; the loop is `GanTrainer`'s."""

    editor_name = "cyclegan"
    editor_version = CycleGanEditor.version
    editor_class = CycleGanEditor
    requires_balance = True  # every batch holds both domains

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = parse_params(self.config.params)  # fail before any data is read

    def build(self):
        s = self.config.sagan
        arch = self.generator_arch()
        nets = {"g_add": generator(**arch), "g_remove": generator(**arch),
                "d_with": patch_discriminator(self.image_size, s.d_conv_dim, s.d_layers),
                "d_without": patch_discriminator(self.image_size, s.d_conv_dim, s.d_layers)}
        self.initialised(*nets.values())
        modules = {**nets, "pool_with": HistoryBuffer(self.params.pool_size, self.image_size),
                   "pool_without": HistoryBuffer(self.params.pool_size, self.image_size)}
        for pool in (modules["pool_with"], modules["pool_without"]):
            pool.to(self.device, memory_format=self.memory_format)
        return arch, modules, {"opt_g": self.adam(nets["g_add"], nets["g_remove"]), "opt_d": self.adam(nets["d_with"], nets["d_without"])}

    def iteration(self, draw, rng, autocast):
        x, c = draw()
        return cyclegan_iteration(self.modules, self.optimizers["opt_g"], self.optimizers["opt_d"], x, c, self.params, rng, autocast)

    def log_line(self, h):
        return (f"D with {h['d_with']:.3f} without {h['d_without']:.3f} | G adv {h['g_adv']:.3f} cyc {h['g_cyc']:.3f} "
                f"id {h['g_id']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | edited (the other domain) | translated back | residual, one face per row."""
        g_add, g_remove = self.modules["g_add"], self.modules["g_remove"]
        edited = translate(g_add, g_remove, fixed, 1 - c_org)
        back = translate(g_add, g_remove, edited, c_org)
        return [[fixed[i], edited[i], back[i], (edited[i] - fixed[i]).abs() * 2 - 1] for i in range(len(fixed))]

    def weights(self):
        return {"g_add": self.modules["g_add"].state_dict(), "g_remove": self.modules["g_remove"].state_dict()}


PLUGIN = EditorPlugin("cyclegan", CycleGanEditor, CycleGanTrainer,
                      "CycleGAN: G_add / G_remove with cycle and identity losses, LSGAN (Zhu et al., ICCV 2017)")
