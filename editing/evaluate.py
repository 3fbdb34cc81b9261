"""Editing quality, measured: `faceaug editors evaluate`.

For one editor and attribute, on held-out test images (identities the editor never saw):

* attribute success, both directions: images without the attribute are edited toward
  "added", images with it toward "removed"; success = the independent judge
  (`editing.judge`) predicts the target. Rates carry 95% Wilson intervals, and the
  judge's rate on the *unedited* images is given beside them (what "success" would be
  for an editor that does nothing), with the judge's accuracy on real test images.
* preservation: mean absolute change (on the [-1, 1] scale, averaged over pixels and
  channels) outside the ground-truth region of the attribute, and inside it.
* mask quality (editors with a mask): share of the mask's mass inside the true region,
  IoU of the thresholded mask with the region, mean mask value inside vs. outside.
* error to the true counterfactual (synthetic benchmark): mean absolute error and PSNR of the
  edit against the face re-rendered with the attribute flipped (`editing.counterfactual`), inside
  and outside the region, next to the error of doing nothing.
* identity preservation (when a verifier embedding is given): cosine similarity between
  an image and its edit, next to same-identity and different-identity pairs. The run scores it
  after its verifiers exist (`recognition.identity`), into identity.json beside the editor.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from editing.base import Editor
from editing.grids import sample_grid
from editing.judge import AttributeJudge
from editing.originals import Originals, load_originals
from pipeline.atomic import write_json_atomic
from pipeline.attributes import region_mask
from pipeline.images import batch_to_model_range
from pipeline.layout import RunLayout


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def success_by_direction(p: torch.Tensor, labels: torch.Tensor) -> dict:
    """Success toward the flipped label from attribute probabilities `p`: images without the attribute
    ("added": p > 0.5 wanted) and with it ("removed": p <= 0.5 wanted), each with a 95% Wilson interval."""
    out = {}
    for direction, chosen, want in (("added", labels < 0.5, True), ("removed", labels > 0.5, False)):
        k = int(chosen.sum())
        hits = int(((p[chosen] > 0.5) == want).sum())
        out[direction] = {"images": k, "success_rate": hits / k if k else None,
                          "success_ci95": wilson_interval(hits, k) if k else None}
    return out


def format_success(d: dict | None) -> str:
    """'85.6% [83, 88] (n=842)' for one direction of `success_by_direction`; 'n/a' without images."""
    if not d or d.get("success_rate") is None:
        return "n/a"
    lo, hi = d["success_ci95"]
    return f"{100 * d['success_rate']:.1f}% [{100 * lo:.0f}, {100 * hi:.0f}] (n={d['images']})"


def mask_mass_inside(mask: torch.Tensor, region: torch.Tensor) -> float:
    """The share of an editor's mask (N x 1 x H x W in [0, 1]) that lies inside the true region (bool, same shape)."""
    return (mask * region).sum().item() / max(mask.sum().item(), 1e-12)


def region_masks(regions: torch.Tensor, attribute: str) -> torch.Tensor:
    """N x H x W bitmasks -> N x 1 x H x W bool for one attribute."""
    return region_mask(regions, attribute).unsqueeze(1)


@torch.inference_mode()
def evaluate_editor(
    editor: Editor,
    attribute: str,
    test: Originals,
    judge: AttributeJudge,
    *,
    mask_threshold: float = 0.5,
    batch_size: int = 64,
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    truth: Callable | None = None,
) -> dict:
    """Score one editor on held-out faces (module docstring). `truth` (`editing.counterfactual.truth_for`, on
    the synthetic benchmark) adds the error to the true counterfactual."""
    labels = test.labels(attribute)
    target = 1 - labels  # the flipped label, as in training
    n = len(labels)
    sources = test.source_ids
    edited_all, masks = [], []
    for i in range(0, n, batch_size):
        x = batch_to_model_range(test.images[i : i + batch_size])
        result = editor.apply(x, target[i : i + batch_size], sources[i : i + batch_size])
        edited_all.append(result.images.float().cpu())
        masks.append(None if result.mask is None else result.mask.float().cpu())
    edited = torch.cat(edited_all)
    mask = torch.cat(masks) if all(m is not None for m in masks) else None
    original = batch_to_model_range(test.images)

    p_edited = torch.cat([judge.predict(edited[i : i + 256], attribute) for i in range(0, n, 256)])
    p_original = torch.cat([judge.predict(original[i : i + 256], attribute) for i in range(0, n, 256)])
    out: dict = {"attribute": attribute, "editor": editor.name, "checkpoint_id": editor.checkpoint_id, "images": n,
                 "judge_balanced_accuracy_on_real_test": judge.test_accuracy.get(attribute)}
    before = success_by_direction(p_original, labels)
    for direction, rates in success_by_direction(p_edited, labels).items():
        out[direction] = rates | {"judge_says_target_before_edit": before[direction]["success_rate"]}

    change = (edited - original).abs().mean(dim=1, keepdim=True)  # N x 1 x H x W
    if test.regions is not None:
        region = region_masks(test.regions, attribute)
        outside, inside = ~region, region
        out["preservation"] = {
            "mean_abs_change_outside_region": (change * outside).sum().item() / max(outside.sum().item(), 1),
            "mean_abs_change_inside_region": (change * inside).sum().item() / max(inside.sum().item(), 1),
            "region_fraction_of_image": inside.float().mean().item(),
        }
        if mask is not None:
            thresholded = mask > mask_threshold
            inter = (thresholded & region).flatten(1).sum(1).float()
            union = (thresholded | region).flatten(1).sum(1).float()
            out["mask"] = {
                "mass_inside_region": mask_mass_inside(mask, region),
                "iou_at_threshold": (inter / union.clamp(min=1)).mean().item(),
                "threshold": mask_threshold,
                "mean_inside": (mask * region).sum().item() / max(region.sum().item(), 1),
                "mean_outside": (mask * outside).sum().item() / max(outside.sum().item(), 1),
            }
    else:
        out["preservation"] = {"mean_abs_change_whole_image": change.mean().item(), "note": "no ground-truth regions in this dataset"}

    if truth is not None and test.regions is not None:
        true = torch.cat([truth(sources[i : i + batch_size], attribute, target[i : i + batch_size], test.images.shape[-1])
                          for i in range(0, n, batch_size)])
        region = region_masks(test.regions, attribute)
        out["counterfactual_error"] = counterfactual_error(edited, original, true, region)
        for direction, chosen in (("added", labels < 0.5), ("removed", labels > 0.5)):  # the truth of adding is one of many
            if chosen.any():
                out["counterfactual_error"][direction] = counterfactual_error(edited[chosen], original[chosen], true[chosen], region[chosen])
    if embed is not None:
        out["identity"] = identity_preservation(embed, original, edited, test.identities)
    return out | {"_edited": edited, "_mask": mask}


def counterfactual_error(edited: torch.Tensor, original: torch.Tensor, true: torch.Tensor, region: torch.Tensor) -> dict:
    """How far an editor's edits are from the true counterfactuals, inside and outside the attribute's region:
    mean absolute error on the [-1, 1] scale and PSNR (peak-to-peak 2), next to the same for doing nothing
    (the original against the truth). `ratio_inside` = the editor's in-region error / doing nothing's: 0 is
    the perfect edit, 1 is no edit at all (what fraction of the needed change is still missing)."""
    def errors(images: torch.Tensor) -> dict:
        out = {}
        for where, m in (("inside", region), ("outside", ~region)):
            weight = m.float().expand_as(images)
            count = weight.sum().clamp(min=1)
            diff = (images - true) * weight
            mae = diff.abs().sum() / count
            mse = diff.pow(2).sum() / count
            out[where] = {"mae": mae.item(), "psnr": (10 * torch.log10(4 / mse.clamp(min=1e-12))).item()}
        return out

    editor, nothing = errors(edited), errors(original)
    return {"editor": editor, "no_edit": nothing,
            "ratio_inside": editor["inside"]["mae"] / max(nothing["inside"]["mae"], 1e-12),
            "ratio_outside": editor["outside"]["mae"] / max(nothing["outside"]["mae"], 1e-12)}


def identity_preservation(embed, original: torch.Tensor, edited: torch.Tensor, identities: torch.Tensor) -> dict:
    e0 = torch.nn.functional.normalize(embed(original), dim=1)
    e1 = torch.nn.functional.normalize(embed(edited), dim=1)
    edit_sim = (e0 * e1).sum(1)
    sims = e0 @ e0.T
    same = identities[:, None] == identities[None, :]
    off_diag = ~torch.eye(len(identities), dtype=torch.bool)
    return {
        "original_vs_edited": edit_sim.mean().item(),
        "same_identity_pairs": sims[same & off_diag].mean().item() if (same & off_diag).any() else None,
        "different_identity_pairs": sims[~same].mean().item(),
    }


def write_evaluation(result: dict, test: Originals, attribute: str, out_dir: Path, rows: int = 8) -> dict:
    """Write evaluation.json and evaluation.png (original | edited | mask | residual | true region)."""
    edited, mask = result.pop("_edited"), result.pop("_mask")
    labels = test.labels(attribute)
    pick = torch.cat([torch.nonzero(labels < 0.5).view(-1)[: rows // 2], torch.nonzero(labels > 0.5).view(-1)[: rows // 2]])
    grid = []
    for i in pick.tolist():
        x = batch_to_model_range(test.images[i : i + 1])[0]
        row = [x, edited[i], mask[i] if mask is not None else torch.zeros_like(x[:1]), (edited[i] - x).abs() * 2 - 1]
        if test.regions is not None:
            row.append(region_masks(test.regions[i : i + 1], attribute)[0].float())
        grid.append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    if grid:
        sample_grid(grid).save(out_dir / "evaluation.png")
    write_json_atomic(result, out_dir / "evaluation.json")
    return result


def held_out(cfg) -> Originals:
    """The run's held-out test originals that editors are scored on (at most evaluation.max_eval_images)."""
    return load_originals([RunLayout(cfg).originals], "test", limit=cfg.evaluation.max_eval_images)


def get_judge(cfg, progress: Callable[[str], None] = print) -> AttributeJudge:
    """The run's independent attribute classifier: trained once on the train originals, then reused."""
    from editing.judge import train_judge

    layout = RunLayout(cfg)
    path = layout.judge
    ev = cfg.evaluation
    key = {"steps": ev.judge_steps, "batch_size": ev.judge_batch_size, "image_size": cfg.data.image_size, "seed": ev.judge_seed}
    if path.exists() and torch.load(path, map_location="cpu", weights_only=True).get("key") == key:
        return AttributeJudge.load(path)
    path.unlink(missing_ok=True)
    shards = [layout.originals]
    train, test = load_originals(shards, "train"), load_originals(shards, "test")
    progress(f"training the attribute judge on {len(train.images)} real train images")
    return train_judge((train.images, train.attributes), (test.images, test.attributes), path,
                       steps=cfg.evaluation.judge_steps, batch_size=cfg.evaluation.judge_batch_size,
                       seed=ev.judge_seed, progress=progress, key=key)


def evaluate_stage(cfg, attribute: str, *, editor_name: str | None = None, editor_directory: str | Path | None = None,
                   device: str = "cpu", progress: Callable[[str], None] = print) -> dict:
    """Score the run's trained editor for `attribute` on the held-out test originals; writes JSON + grid beside it."""
    from editing.train import load_editor

    name = editor_name or cfg.editor.name
    directory = Path(editor_directory) if editor_directory else RunLayout(cfg).editor_dir(attribute, name)
    from editing.counterfactual import truth_for

    editor = load_editor(cfg, attribute, name, directory=directory, device=device)
    judge = get_judge(cfg, progress)
    test = held_out(cfg)
    progress(f"evaluating {name}/{attribute} on {len(test.images)} held-out test images")
    result = evaluate_editor(editor, attribute, test, judge, mask_threshold=cfg.evaluation.mask_threshold, truth=truth_for(cfg))
    return write_evaluation(result, test, attribute, directory)
