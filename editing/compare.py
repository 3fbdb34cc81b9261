"""Editors side by side: `faceaug editors compare`.

For each attribute, every named editor is trained (or resumed, or reused) on the run's train
originals with the same config — same data, widths, loss weights and iteration budget — and
scored on the same held-out test faces by the same independent judge (`editing.evaluate`):

* attribute success both ways, change outside / inside the true region, mask mass and IoU;
* identity preservation: cosine similarity of the run's baseline verifier embeddings between a
  face and its edit, next to same- and different-identity pairs (when a verifier is trained);
* training time (summed over resumes) and editing throughput (images/s, batch 64, this device).

Writes `<run>/compare/<attribute>/compare.json`, `compare.md` and `grid.png`: the same faces
(half without, half with the attribute) edited by every editor toward the flipped label, each
edit next to its |residual| (the paper's Figs. 4-7).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from editing.evaluate import evaluate_editor, format_success, get_judge, held_out
from editing.grids import sample_grid
from editing.originals import Originals
from editing.registry import get_plugin
from editing.train import load_editor, train_editor
from pipeline.atomic import write_json_atomic
from pipeline.config import RunConfig
from pipeline.images import batch_to_model_range
from pipeline.layout import ALL, EDITOR_JSON, RunLayout


def train_seconds(directory: Path) -> float | None:
    meta_path = directory / EDITOR_JSON
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if "shared" in meta:  # a multi-attribute editor: the time of the one shared model
        return train_seconds((directory / meta["shared"]).resolve())
    return meta.get("train_seconds", 0.0 if meta.get("editor") == "identity" else None)


@torch.inference_mode()
def edit_throughput(editor, test: Originals, batch: int = 64, repeats: int = 3) -> float:
    """Median images/s of editing one batch of test faces (after a warm-up call)."""
    x = batch_to_model_range(test.images[:batch])
    target = torch.ones(len(x))
    sources = test.source_ids[:batch]
    editor.apply(x, target, sources)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        editor.apply(x, target, sources)
        times.append(time.perf_counter() - t)
    return len(x) / float(np.median(times))


def _labelled(grid: Image.Image, labels: list[str], cell: int) -> Image.Image:
    """The grid with a header naming each column."""
    header = Image.new("RGB", (grid.width, 14), "white")
    draw = ImageDraw.Draw(header)
    for i, text in enumerate(labels):
        draw.text((i * cell + 1, 1), text[: max(1, cell // 6)], fill="black")
    out = Image.new("RGB", (grid.width, grid.height + header.height), "white")
    out.paste(header, (0, 0))
    out.paste(grid, (0, header.height))
    return out


def _row_order(test: Originals, attribute: str, rows: int) -> list[int]:
    labels = test.labels(attribute)
    return (torch.nonzero(labels < 0.5).view(-1)[: rows // 2].tolist() + torch.nonzero(labels > 0.5).view(-1)[: rows // 2].tolist())


def compare_editors(cfg: RunConfig, names: list[str], attributes: list[str] | None = None, *, train: bool = True,
                    device: str = "cpu", rows: int = 6, embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    progress: Callable[[str], None] = print) -> dict:
    """Train (unless `train` is False) and score every editor in `names` for each attribute; write the comparison.
    `embed` (a verifier's embedding, e.g. the run's baseline: `recognition.identity.baseline_embedding`) adds
    identity preservation."""
    attributes = list(attributes or cfg.editor.attributes)
    from editing.counterfactual import truth_for

    judge = get_judge(cfg, progress)
    test = held_out(cfg)
    truth = truth_for(cfg)
    everything = {}
    for attribute in attributes:
        out_dir = RunLayout(cfg).compare_dir(attribute)
        out_dir.mkdir(parents=True, exist_ok=True)
        pick = _row_order(test, attribute, rows)
        columns: list[list[torch.Tensor]] = [[batch_to_model_range(test.images[i : i + 1])[0] for i in pick]]
        labels, table = ["input"], []
        for name in names:
            ecfg = cfg.for_editor(name)
            plugin = get_plugin(name)
            directory = RunLayout(ecfg).editor_dir(attribute)
            if train:  # a finished editor is reused, a partial one resumed
                train_editor(ecfg, ALL if plugin.multi_attribute else attribute, device=device, progress=progress)
            editor = load_editor(ecfg, attribute, directory=directory, device=device)
            progress(f"compare {attribute}: scoring {name}")
            result = evaluate_editor(editor, attribute, test, judge, mask_threshold=cfg.evaluation.mask_threshold, embed=embed,
                                     truth=truth)
            edited, _ = result.pop("_edited"), result.pop("_mask")
            result["train_seconds"] = train_seconds(directory)
            result["edit_images_per_s"] = edit_throughput(editor, test)
            table.append(result)
            columns.append([edited[i] for i in pick])
            columns.append([(edited[i] - batch_to_model_range(test.images[i : i + 1])[0]).abs() * 2 - 1 for i in pick])
            labels += [name, "|res|"]
        grid = sample_grid([list(row) for row in zip(*columns)]) if pick else None
        if grid is not None:
            _labelled(grid, labels, test.images.shape[-1]).save(out_dir / "grid.png")
        summary = {"attribute": attribute, "editors": names, "test_images": len(test.images),
                   "iterations": cfg.editor.iterations, "image_size": cfg.data.image_size, "device": device,
                   "grid_columns": labels, "results": table}
        write_json_atomic(summary, out_dir / "compare.json")
        (out_dir / "compare.md").write_text(comparison_markdown(summary))
        everything[attribute] = summary
    return everything


COMPARISON_COLUMNS = ["editor", "added: success [95% CI]", "removed: success [95% CI]", "change outside / inside true region",
                      "error to the true edit in region (of no edit's)", "mask mass inside", "mask IoU",
                      "identity: cos(orig, edit) / same / different", "train s", "edit img/s"]


def comparison_rows(summary: dict) -> list[list[str]]:
    """The comparison table of one attribute: one row of formatted cells per editor (COMPARISON_COLUMNS)."""
    rows = []
    for r in summary["results"]:
        p, m, ident = r.get("preservation", {}), r.get("mask"), r.get("identity")
        if "mean_abs_change_outside_region" in p:
            change = f"{p['mean_abs_change_outside_region']:.4f} / {p['mean_abs_change_inside_region']:.4f}"
        else:
            change = f"{p.get('mean_abs_change_whole_image', float('nan')):.4f} (whole image)"
        mask = [f"{m['mass_inside_region']:.2f}", f"{m['iou_at_threshold']:.3f}"] if m else ["–", "–"]
        if ident:
            same = ident["same_identity_pairs"]
            ident_s = (f"{ident['original_vs_edited']:.3f} / {'n/a' if same is None else f'{same:.3f}'} / "
                       f"{ident['different_identity_pairs']:.3f}")
        else:
            ident_s = "n/a (no verifier yet)"
        secs = "n/a" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
        truth = format_truth(r.get("counterfactual_error"))
        rows.append([r["editor"], format_success(r["added"]), format_success(r["removed"]), change, truth, *mask, ident_s, secs,
                     f"{r['edit_images_per_s']:.0f}"])
    return rows


def format_truth(error: dict | None) -> str:
    """'0.031 (42%)': the mean absolute error to the true counterfactual inside the region, and that as a share of
    doing nothing's; 'n/a' without a counterfactual (real data)."""
    if not error:
        return "n/a"
    return f"{error['editor']['inside']['mae']:.3f} ({100 * error['ratio_inside']:.0f}%)"


def comparison_title(summary: dict) -> str:
    return (f"{summary['attribute']}: {len(summary['editors'])} editors, {summary['iterations']} iterations, "
            f"{summary['image_size']} px, {summary['test_images']} held-out test faces")


def comparison_markdown(summary: dict) -> str:
    """The comparison table of one attribute, as markdown."""
    lines = [f"### {comparison_title(summary)}", "", "| " + " | ".join(COMPARISON_COLUMNS) + " |",
             "|" + "---|" * len(COMPARISON_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(summary)]
    if summary["results"]:
        lines += ["", f"Judge balanced accuracy on real test images: {summary['results'][0].get('judge_balanced_accuracy_on_real_test'):.3f}"]
    return "\n".join(lines) + "\n"
