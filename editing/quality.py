"""Editor quality against the targets an editor must meet before its augmentation can help, one object per
attribute (the committed `docs/evidence/editor_quality.json`, written by `faceaug editors quality`).

Every figure is read from what `faceaug editors evaluate` wrote beside the editor (held-out test faces, the
independent judge) and from the editor's own checkpoint-selection record (validation faces); an evaluation of
another checkpoint than the one the editor now holds is refused, not reported."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.layout import EVALUATION_JSON, RunLayout

# The targets of the editor issue (#15), for the evidence profile: both directions succeed on >= 90% of test faces,
# the image outside the attribute's true region barely changes, the mask sits on the region, and the edit is at
# least halfway to the true counterfactual (in-region error at most half of doing nothing).
TARGETS = {"added": (">=", 0.90), "removed": (">=", 0.90), "outside_change": ("<=", 0.02),
           "mask_mass_inside": (">=", 0.80), "counterfactual_error_ratio": ("<=", 0.5)}


def _read(path: Path, missing: str) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _checkpoint_text(meta: dict) -> str:
    sel = meta.get("selection")
    trained = meta.get("iterations")
    if not sel:
        return f"the last iteration ({trained}); no validation selection was configured"
    stop = f", stopped early at {sel['stopped_early_at']}" if sel.get("stopped_early_at") else ""
    best = sel.get("best") or {}
    mask = "" if best.get("mask_mass_inside") is None else f", mask mass inside {best['mask_mass_inside']:.2f}"
    return (f"iteration {sel['best_step']} of {trained}{stop}, chosen on the validation faces ({sel['criterion']}); "
            f"there: weaker direction {best.get('weaker_direction', float('nan')):.3f}, "
            f"outside change {best.get('outside_change', float('nan')):.4f}{mask}")


def quality_entry(directory: Path) -> dict:
    """One editor's entry: rates in [0, 1] on the held-out test faces, the chosen checkpoint and why, the targets met."""
    ev = _read(directory / EVALUATION_JSON, "no evaluation; run faceaug editors evaluate first")
    meta = _read(directory / "editor.json", "no trained editor; train the editor first")
    if meta.get("checkpoint_id") and ev.get("checkpoint_id") != meta["checkpoint_id"]:
        raise ValueError(f"{directory / EVALUATION_JSON}: scores checkpoint {ev.get('checkpoint_id')}, but the editor now "
                         f"holds {meta['checkpoint_id']}; run faceaug editors evaluate again")
    mask = ev.get("mask") or {}
    truth = ev.get("counterfactual_error") or {}
    entry = {
        "added": ev["added"]["success_rate"] if ev.get("added") else None,
        "removed": ev["removed"]["success_rate"] if ev.get("removed") else None,
        "outside_change": ev["preservation"]["mean_abs_change_outside_region"],
        "mask_mass_inside": mask.get("mass_inside_region"),
        "counterfactual_error_ratio": truth.get("ratio_inside"),
        # per direction: adding glasses or a beard has hidden traits the editor can only guess (the floor of
        # benchmarks/counterfactual_bound.py), removing them has none
        "counterfactual_error_ratio_by_direction": {d: truth[d]["ratio_inside"] for d in ("added", "removed") if d in truth},
        "iterations": (meta.get("selection") or {}).get("best_step", meta.get("iterations")),
        "checkpoint": _checkpoint_text(meta),
        "editor": ev["editor"], "test_faces": {d: ev[d]["images"] for d in ("added", "removed") if ev.get(d)},
        "success_ci95": {d: ev[d]["success_ci95"] for d in ("added", "removed") if ev.get(d)},
    }
    entry["targets_met"] = {k: (None if entry[k] is None else (entry[k] >= t if op == ">=" else entry[k] <= t))
                            for k, (op, t) in TARGETS.items()}
    return entry


def editor_quality(cfg, attributes: list[str] | None = None, editor: str | None = None) -> dict:
    """{attribute: entry} for the run's trained and evaluated editors."""
    layout = RunLayout(cfg)
    return {a: quality_entry(layout.editor_dir(a, editor)) for a in attributes or cfg.editor.attributes}


def quality_markdown(quality: dict) -> str:
    """The table of `editor_quality`, each figure marked where it misses its target."""
    def cell(entry: dict, key: str, fmt: str) -> str:
        v = entry[key]
        if v is None:
            return "n/a"
        return format(v, fmt) + ("" if entry["targets_met"][key] else " ✗")
    head = ("| attribute | added | removed | outside change | mask mass inside | error to the truth / no edit | "
            "checkpoint (iteration) |\n|---|---|---|---|---|---|---|\n")
    targets = "| target | ≥ 0.90 | ≥ 0.90 | ≤ 0.02 | ≥ 0.80 | ≤ 0.5 | |\n"
    rows = "".join(f"| {a} | {cell(e, 'added', '.3f')} | {cell(e, 'removed', '.3f')} | {cell(e, 'outside_change', '.4f')} | "
                   f"{cell(e, 'mask_mass_inside', '.3f')} | {cell(e, 'counterfactual_error_ratio', '.2f')} | {e['iterations']} |\n"
                   for a, e in quality.items())
    return head + targets + rows
