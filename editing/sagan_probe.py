"""Why does a SaGAN edit fail? `faceaug editors probe`: take a trained SaGAN apart on held-out faces.

`faceaug editors evaluate` says *whether* edits succeed (by the independent judge). When they do
not, this says *where* the generator falls short, by re-blending the same AMN output through
different masks and asking both the judge and SaGAN's own discriminator:

    own mask        Î = AMN(I, c)·b + I·(1 − b)          what the editor outputs (eq. 7)
    mask / max      b scaled so each image's largest mask value is 1 (same shape, full strength)
    true region     b replaced by the ground-truth region of the attribute (hard 0/1)
    AMN alone       b = 1 everywhere: the attribute manipulation network's raw output
    no edit         Î = I: what "success" is for an editor that does nothing

Reading it: if "true region" or "mask / max" succeeds where "own mask" fails, the AMN has learned
the attribute and the mask is too faint; if the discriminator's attribute head accepts "own mask"
while the judge does not, the generator satisfies SaGAN's classification loss (eq. 9) with a
change that only the discriminator it was trained against reads as the attribute.

SaGAN-specific (it needs the discriminator from `checkpoint.pt` and the generator's AMN and SAN
separately), so it reads the checkpoint, not the `Editor` interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

import numpy as np

from editing.gan import CHECKPOINT
from editing.grids import sample_grid
from editing.originals import Originals
from editing.evaluate import region_masks, success_by_direction
from editing.judge import AttributeJudge
from editing.networks import Discriminator
from editing.sagan import Generator
from pipeline.atomic import write_json_atomic
from pipeline.images import batch_to_model_range

VARIANTS = ("own mask", "mask / max", "true region", "AMN alone", "no edit")


def load_sagan_checkpoint(directory: str | Path) -> tuple[Generator, Discriminator, dict]:
    """Generator and discriminator from a SaGAN `checkpoint.pt` (fp32, eval mode)."""
    path = Path(directory) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{path}: no SaGAN training checkpoint (the probe needs its discriminator)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "generator" not in state or "discriminator" not in state:
        raise ValueError(f"{path} has no generator/discriminator pair; it was not written by the sagan trainer")
    s = state["config"]["sagan"]
    g = Generator(**state["arch"])
    g.load_state_dict(state["generator"])
    d = Discriminator(state["image_size"], s["d_conv_dim"], s["d_layers"])
    d.load_state_dict(state["discriminator"])
    return g.eval(), d.eval(), state


@torch.inference_mode()
def probe_sagan(directory: str | Path, attribute: str, test: Originals, judge: AttributeJudge, *,
                batch_size: int = 128, grid_rows: int = 8) -> tuple[dict, list[list[torch.Tensor]]]:
    """The table described in the module docstring, plus grid rows
    (input | own mask | mask / max | true region | AMN alone | mask)."""
    if test.regions is None:
        raise ValueError("the probe needs ground-truth attribute regions (the synthetic benchmark has them)")
    g, d, state = load_sagan_checkpoint(directory)
    if state["attribute"] != attribute:
        raise ValueError(f"{Path(directory) / CHECKPOINT} edits {state['attribute']!r}, not {attribute!r}")
    labels = test.labels(attribute)
    target = 1 - labels
    region = region_masks(test.regions, attribute).float()
    n = len(labels)
    outputs: dict[str, list[torch.Tensor]] = {v: [] for v in VARIANTS}
    masks = []
    for i in range(0, n, batch_size):
        x = batch_to_model_range(test.images[i : i + batch_size])
        c = target[i : i + batch_size]
        b = g.attend(x)
        amn = g.manipulate(x, c)
        peak = b.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1)
        for name, m in (("own mask", b), ("mask / max", b / peak), ("true region", region[i : i + batch_size]),
                        ("AMN alone", torch.ones_like(b))):
            outputs[name].append(g.blend(x, amn, m))
        outputs["no edit"].append(x)
        masks.append(b)
    mask = torch.cat(masks)
    edited = {v: torch.cat(t) for v, t in outputs.items()}

    def judge_p(images):
        return torch.cat([judge.predict(images[j : j + 256], attribute) for j in range(0, n, 256)])

    def critic_p(images):
        return torch.cat([torch.sigmoid(d(images[j : j + 256])[1].float()) for j in range(0, n, 256)])

    original = edited["no edit"]
    table = {}
    for v in VARIANTS:
        table[v] = {"judge": success_by_direction(judge_p(edited[v]), labels),
                    "discriminator": success_by_direction(critic_p(edited[v]), labels),
                    "mean_abs_change_outside_region": ((edited[v] - original).abs().mean(1, keepdim=True) * (1 - region)).sum().item()
                    / max((1 - region).sum().item(), 1)}
    # The discriminator's attribute head on real test faces, as a classifier (the judge's figure sits beside it).
    p_real = critic_p(original)
    pos, neg = labels > 0.5, labels < 0.5
    d_acc = 0.5 * (((p_real[pos] > 0.5).float().mean() if pos.any() else torch.tensor(float("nan")))
                   + ((p_real[neg] <= 0.5).float().mean() if neg.any() else torch.tensor(float("nan"))))
    inside = mask * region
    result = {
        "attribute": attribute, "directory": str(directory), "iteration": state["step"], "images": n,
        "discriminator_balanced_accuracy_on_real_test": d_acc.item(),
        "judge_balanced_accuracy_on_real_test": judge.test_accuracy.get(attribute),
        "mask_inside_region": {
            "mean": inside.sum().item() / max(region.sum().item(), 1),
            "p90": float(np.quantile(mask[region.bool()].numpy(), 0.9)) if region.any() else None,
            "per_image_max_mean": mask.flatten(1).amax(1).mean().item(),
        },
        "variants": table,
    }
    pick = torch.cat([torch.nonzero(labels < 0.5).view(-1)[: grid_rows // 2], torch.nonzero(labels > 0.5).view(-1)[: grid_rows // 2]])
    rows = [[original[i], *(edited[v][i] for v in VARIANTS[:4]), mask[i]] for i in pick.tolist()]
    return result, rows


def probe_table(result: dict) -> str:
    """Markdown: success by the judge and by the discriminator for each way of blending the AMN output."""
    lines = ["| blend | judge: added | judge: removed | D head: added | D head: removed | change outside region |",
             "| --- | --- | --- | --- | --- | --- |"]

    def pct(r):
        return "–" if r["success_rate"] is None else f"{100 * r['success_rate']:.1f}% (n={r['images']})"

    for v, row in result["variants"].items():
        j, d = row["judge"], row["discriminator"]
        lines.append(f"| {v} | {pct(j['added'])} | {pct(j['removed'])} | {pct(d['added'])} | {pct(d['removed'])} "
                     f"| {row['mean_abs_change_outside_region']:.4f} |")
    return "\n".join(lines)


def probe_stage(cfg, attribute: str, *, editor_directory: str | Path | None = None,
                progress: Callable[[str], None] = print) -> dict:
    """Probe the run's trained SaGAN for `attribute`; writes probe.json, probe.md and probe.png beside it."""
    from editing.evaluate import get_judge, held_out
    from pipeline.layout import RunLayout

    directory = Path(editor_directory) if editor_directory else RunLayout(cfg).editor_dir(attribute, "sagan")
    judge = get_judge(cfg, progress)
    test = held_out(cfg)
    progress(f"probing sagan/{attribute} on {len(test.images)} held-out test images")
    result, rows = probe_sagan(directory, attribute, test, judge)
    write_json_atomic(result, directory / "probe.json")
    (directory / "probe.md").write_text(probe_table(result) + "\n")
    if rows:
        sample_grid(rows).save(directory / "probe.png")
    return result
