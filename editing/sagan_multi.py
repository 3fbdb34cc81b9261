"""Multi-attribute SaGAN: one generator edits every configured attribute.

SaGAN (Zhang et al., ECCV 2018) trains one model per attribute and leaves editing several
attributes with one model as future work (section 2.3: StarGAN "can edit multiple attributes
with one model, while our SaGAN can only edit one attribute which will be our future work").
This is that model: SaGAN's networks and losses (see `sagan.py`), conditioned on *which*
of the K configured attributes is edited (k) and to which value (t):

    AMN:  I_a = F_m(I, e),  e ∈ R^K with e_k = 2t - 1 (±1) and e_j = 0 for j ≠ k    (eq. 5)
    SAN:  b   = F_a(I, onehot(k))                                                  (eq. 6)
    G:    Î   = G(I, k, t) = I_a · b + I · (1 - b)                                  (eq. 7)

D has the real/fake head and K attribute logits. For a real image I with labels c^g ∈ {0, 1}^K,
an attribute k drawn uniformly for each image and t = 1 - c^g_k (its flipped label):

    D:  L_src = -E[D_src(I)] + E[D_src(Î)] + λgp E[(||∇D_src(Ĩ)||2 - 1)^2]         (eq. 12)
        L_cls = E[Σ_j -log D_cls,j(c^g_j | I)]                                   (eq. 2, every attribute)
    G:  L_adv = -E[D_src(Î)]                                                     (eq. 13)
        L_cls = E[-log D_cls,k(t | Î)]                                            (eq. 9, the edited one)
        L_rec = λ1 ||I - G(G(I, k, t), k, c^g_k)||1 + λ2 ||I - G(I, k, c^g_k)||1    (eq. 10)

with SaGAN's weights, optimiser and n_critic, all read from the same config (`editor.sagan`).
At K = 1 every loss is SaGAN's; the networks differ only in the condition channels (the AMN's is
±1 instead of 0/1, and the SAN has one, constant).

Choices the paper leaves open, and deviations (beyond SaGAN's own, which apply unchanged:
`mask_l1`, `mask_tv`, `identity_trains_mask`):
  * Condition encoding: signed one-hot. With "channel k = t, others 0", every removal (t = 0)
    would be the same all-zero condition, so the AMN could not tell which attribute to remove;
    ±1 on channel k keeps the 2K edits distinct, 0 meaning "not this attribute".
  * The SAN sees onehot(k) (the paper's SAN sees the image only, enough for one attribute), so
    the mask can move to the edited attribute's region; it does not see t, so, as in SaGAN, one
    mask serves an edit and its reverse.
  * Each image in a batch edits its own attribute, drawn uniformly (from the loop's seeded RNG),
    so at equal `editor.iterations` one run costs about a Kth of K per-attribute SaGANs and
    each attribute gets about a Kth of their edits.
  * D's attribute loss sums over the K attributes and averages over images (StarGAN's
    normalisation), so each attribute's head is trained as strongly as a single SaGAN's.
  * `balance_attribute`: GanTrainer balances batches on one 0/1 vector; we give it the labels of
    the configured attribute whose rarer value is rarest (CelebA: eyeglasses, 6.5%), so that
    half of each batch has it and its removal is practised. The others stay at their natural
    rates (CelebA: 16-48% for the rarer value), which practise both directions unaided.
  * `editor.params.keep_others` (default 0, off): weight of a StarGAN-style loss keeping the
    *other* attributes of Î at their original labels, E[Σ_{j≠k} -log D_cls,j(c^g_j | Î)]. It is
    logged as `g_keep` either way, as a measure of how much an edit leaks into other attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from editing.base import EditResult, editor_params
from editing.gan import CHECKPOINT, GanEditor, GanTrainer
from editing.losses import attention_generator_losses, critic_steps, with_mask_penalty
from editing.networks import Discriminator, EncoderDecoder
from editing.registry import EditorPlugin
from editing.sagan import Generator
from pipeline.atomic import write_json_atomic
from pipeline.layout import ALL
from pipeline.precision import amp as _amp


class SaganMultiParams(BaseModel):
    """`editor.params` of sagan_multi."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    keep_others: float = Field(0.0, ge=0, description="weight of keeping the non-edited attributes' labels on Î (StarGAN-style); 0: off")


def parse_params(params: dict) -> SaganMultiParams:
    """`editor.params` -> SaganMultiParams; an unknown or bad key raises a ConfigError naming it."""
    return editor_params(SaganMultiParams, params, "sagan_multi")


class MultiGenerator(nn.Module):
    """G(I, k, t) = AMN(I, e(k, t)) * SAN(I, onehot(k)) + I * (1 - SAN(I, onehot(k))); Table 1 networks."""

    def __init__(self, num_attributes: int, conv_dim: int = 32, downsamples: int = 3, res_blocks: int = 4):
        super().__init__()
        self.num_attributes = num_attributes
        self.amn = EncoderDecoder(3 + num_attributes, 3, conv_dim, downsamples, res_blocks, "tanh")
        self.san = EncoderDecoder(3 + num_attributes, 1, conv_dim, downsamples, res_blocks, "sigmoid")

    blend = staticmethod(Generator.blend)

    def _with_channels(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The image with the N x K code as K constant channels."""
        return torch.cat([x, code.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)

    def manipulate(self, x: torch.Tensor, k: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """AMN: channel k holds 2t - 1 (±1 for remove/add), the others 0."""
        code = torch.zeros(len(x), self.num_attributes, dtype=x.dtype, device=x.device)
        code.scatter_(1, k.view(-1, 1), (2 * t.to(x.dtype) - 1).view(-1, 1))
        return self.amn(self._with_channels(x, code))

    def attend(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.san(self._with_channels(x, F.one_hot(k, self.num_attributes)))

    def forward(self, x: torch.Tensor, k: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.attend(x, k)
        return self.blend(x, self.manipulate(x, k, t), mask), mask


class MultiDiscriminator(Discriminator):
    """SaGAN's discriminator with K attribute logits (N x K) instead of one."""

    def __init__(self, image_size: int, conv_dim: int, layers: int, num_attributes: int):
        super().__init__(image_size, conv_dim, layers)
        self.cls = nn.Conv2d(self.src.in_channels, num_attributes, image_size // 2**layers, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).flatten(1)


def _generator(arch: dict) -> MultiGenerator:
    return MultiGenerator(len(arch["attributes"]), arch["conv_dim"], arch["downsamples"], arch["res_blocks"])


def multi_iteration(g: MultiGenerator, d: MultiDiscriminator, opt_g, opt_d, draw: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                    s, params: SaganMultiParams, n_critic: int, rng: torch.Generator, autocast: torch.dtype | None = None) -> dict[str, float]:
    """One iteration: `n_critic` discriminator updates, then one generator update (as `sagan_iteration`).

    `draw()` returns (images, N x K labels); each image edits one attribute drawn from `rng`.
    """
    amp = _amp(autocast, next(g.parameters()).device.type)
    K = g.num_attributes

    def edit_of(x: torch.Tensor, labels: torch.Tensor):
        """Each image edits one attribute k, drawn from `rng`, toward its flipped label."""
        k = torch.randint(K, (len(labels),), generator=rng).to(labels.device)
        c_org = labels.gather(1, k.view(-1, 1)).view(-1)
        c_trg = 1 - c_org
        return g(x, k, c_trg)[0], (k, c_org, c_trg)

    # 1. Train the discriminator n_critic times, each on a fresh batch; its attribute head learns all K labels
    #    (summed over the K logits, averaged over images: cls_scale = K on the mean).
    (x, labels, (k, c_org, c_trg)), (d_adv, d_cls, d_gp) = critic_steps(edit_of, d, opt_d, draw, s, n_critic, rng, amp, cls_scale=K)

    # 2. Train the generator on the last batch (SaGAN's losses for the edited attribute k); the mask depends on k only.
    with amp:
        g_loss, mask, parts, cls_fake = attention_generator_losses(
            lambda v: g.attend(v, k), lambda v2, t2: g.manipulate(v2, torch.cat([k, k]), t2), lambda v, t: g(v, k, t)[0],
            d, x, c_org, c_trg, s, lambda cls: cls.gather(1, k.view(-1, 1)).view(-1), rng)
        others = 1 - F.one_hot(k, K).float()
        g_keep = (F.binary_cross_entropy_with_logits(cls_fake.float(), labels, reduction="none") * others).sum(1).mean()
        g_loss = with_mask_penalty(g_loss + s.lambda_cls * params.keep_others * g_keep, s, mask)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item(), "g_adv": parts["g_adv"].item(),
            "g_cls": parts["g_cls"].item(), "g_keep": g_keep.item(), "g_dual": parts["g_dual"].item(), "g_id": parts["g_id"].item(),
            "mask_mean": mask.float().mean().item()}


class SaganMultiEditor(GanEditor):
    """One attribute of a multi-attribute SaGAN; `for_attribute` rebinds to another without reloading."""

    name = "sagan_multi"
    version = "1"
    has_mask = True
    title = "sagan_multi"

    def __init__(self, generator: MultiGenerator, model_attributes: tuple[str, ...], attribute: str, image_size: int,
                 checkpoint_id: str, device: torch.device, precision: str = "auto"):
        if attribute not in model_attributes:
            raise ValueError(f"this sagan_multi model edits {list(model_attributes)}, not {attribute!r}")
        super().__init__(attribute, image_size, checkpoint_id, device, precision)
        self.model_attributes = tuple(model_attributes)
        self.index = self.model_attributes.index(attribute)
        self.generator = self.place(generator)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> "SaganMultiEditor":
        """A per-attribute pointer directory (bound to its attribute) or the shared model's (bound to the first)."""
        directory = Path(directory)
        meta_path = directory / "editor.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        shared = directory / meta["shared"] if "shared" in meta else directory
        state, checkpoint_id = cls.read_weights(shared)
        g = _generator(state["arch"])
        g.load_state_dict(state["generator"])
        attributes = tuple(state["arch"]["attributes"])
        attribute = meta["attribute"] if "shared" in meta else attributes[0]
        return cls(g, attributes, attribute, state["image_size"], checkpoint_id, torch.device(device), precision)

    def for_attribute(self, attribute: str) -> "SaganMultiEditor":
        """The same model, bound to another of its attributes."""
        return type(self)(self.generator, self.model_attributes, attribute, self.image_size, self.checkpoint_id, self.device, self.precision)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        x = self.batch(images, target)
        k = torch.full((len(x),), self.index, dtype=torch.long, device=self.device)
        out, mask = self.generator(x, k, target.to(self.device, self.dtype))
        return EditResult(out.float().clamp_(-1, 1).cpu(), mask.float().cpu())


class SaganMultiTrainer(GanTrainer):
    """Trains one multi-attribute SaGAN on `config.attributes`, as the unit 'all'."""

    editor_name = "sagan_multi"
    editor_version = SaganMultiEditor.version
    editor_class = SaganMultiEditor

    def __init__(self, *, attribute: str, image_size: int, out_dir, config, device: str = "cpu"):
        if attribute != ALL:
            raise ValueError(f"sagan_multi trains every configured attribute with one model: train it as {ALL!r}, not {attribute!r}")
        if not config.attributes:
            raise ValueError("sagan_multi needs at least one attribute in editor.attributes")
        super().__init__(attribute=attribute, image_size=image_size, out_dir=out_dir, config=config, device=device)
        self.attributes = tuple(config.attributes)
        self.params = parse_params(config.params)

    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print, seed: int = 0) -> Path:
        self._refuse_other_attributes()
        out = super().fit(train_shards, progress=progress, seed=seed)
        meta = json.loads((out / "editor.json").read_text())
        if meta["attributes"] != list(self.attributes):  # GanTrainer records ['all']; name what the model edits
            write_json_atomic({**meta, "attributes": list(self.attributes)}, out / "editor.json")
        return out

    def _refuse_other_attributes(self) -> None:
        """Name the two attribute lists when a model of other attributes is in the way (the training key
        includes the list too, but its mismatch error prints the whole key)."""
        for path in (self.out_dir / "editor.json", self.out_dir / CHECKPOINT):
            if not path.exists():
                continue
            if path.suffix == ".json":
                arch = json.loads(path.read_text()).get("arch", {})
            else:
                arch = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("arch", {})
            trained = arch.get("attributes")
            if trained is not None and list(trained) != list(self.attributes):
                raise ValueError(f"{path} was trained for attributes {list(trained)}; this run asks for {list(self.attributes)}. "
                                 f"Use another output_dir, or delete {self.out_dir} to retrain.")

    def labels_for(self, originals):
        return torch.stack([originals.labels(a) for a in self.attributes], dim=1)

    def balance_on(self, labels):
        """The labels of the attribute whose rarer value is rarest (see the module docstring)."""
        rate = labels.mean(0)
        j = int(torch.argmin(torch.minimum(rate, 1 - rate)))
        if self.config.balance_attribute and float(rate[j]) in (0.0, 1.0):
            have = int(labels[:, j].sum())
            raise ValueError(f"cannot balance batches: {have} training images with {self.attributes[j]}, {len(labels) - have} without")
        return labels[:, j]

    def build(self):
        s = self.config.sagan
        arch = {**self.generator_arch(), "attributes": list(self.attributes)}
        g = _generator(arch)
        d = MultiDiscriminator(self.image_size, s.d_conv_dim, s.d_layers, len(self.attributes))
        self.initialised(g, d)
        return arch, {"generator": g, "discriminator": d}, {"opt_g": self.adam(g), "opt_d": self.adam(d)}

    def iteration(self, draw, rng, autocast):
        m, o = self.modules, self.optimizers
        return multi_iteration(m["generator"], m["discriminator"], o["opt_g"], o["opt_d"], draw, self.config.sagan, self.params,
                               self.config.n_critic, rng, autocast)

    def log_line(self, h):
        return (f"D adv {h['d_adv']:.3f} cls {h['d_cls']:.3f} gp {h['d_gp']:.3f} | G adv {h['g_adv']:.3f} "
                f"cls {h['g_cls']:.3f} keep {h['g_keep']:.3f} dual {h['g_dual']:.3f} id {h['g_id']:.3f} mask {h['mask_mean']:.3f}")

    def sample_rows(self, fixed, c_org):
        """input | (edit, mask) of each attribute, its label flipped; one face per row."""
        g = self.modules["generator"]
        cells = []
        for j in range(len(self.attributes)):
            k = torch.full((len(fixed),), j, dtype=torch.long, device=fixed.device)
            cells.append(g(fixed, k, 1 - c_org[:, j]))
        return [[fixed[i]] + [c[i] for edited, mask in cells for c in (edited, mask)] for i in range(len(fixed))]

    def weights(self):
        return {"generator": self.modules["generator"].state_dict()}


PLUGIN = EditorPlugin("sagan_multi", SaganMultiEditor, SaganMultiTrainer,
                      "SaGAN for all attributes with one model: attribute-conditioned AMN and SAN (the paper's future work)",
                      multi_attribute=True)
