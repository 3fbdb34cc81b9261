"""Choosing an editor's checkpoint on validation faces, never on the test faces.

The run's validation identities (the `valid` split: the official partition, or `data.valid_identities`
carved out of the paper split's training identities) are disjoint from both the identities editors
train on and the held-out test identities that the final scores use. Every `editor.select_every`
iterations the trainer writes its current weights, loads them as the editor a stage would use, and
this validator scores it on `editor.valid_images` validation faces per attribute, half of them with the
attribute and half without where the split has enough (drawn from the first `POOL` x that many), so the
rarer direction is not judged on a handful of faces:

* attribute success both ways, by the run's independent judge (`editing.judge`);
* mean absolute change outside the attribute's true region (synthetic benchmark);
* the error to the true counterfactual inside the region, as a share of doing nothing's
  (`editing.counterfactual`), where the benchmark has one;
* the share of the editor's mask that lies inside the true region, for editors with a mask.

Criterion (`rank`, larger is better): first whether the change outside the region stays within
`PRESERVATION_LIMIT` (the target), then the weaker direction's success (both ways must work), then a
smaller error to the true edit. With `editor.select_mask_target` set (off in every profile; decided for the
runs of docs/editors.md, "A selection rule that includes the mask"), a tier comes second: whether the
checkpoint meets both the success target (`SUCCESS_TARGET` both ways) and the mask target (the weakest
attribute's mask mass inside the region at least that share); a checkpoint without a mask figure does not.
The best checkpoint becomes the editor; the whole curve of scores is written beside it (selection.json) and
shown in the report. With `editor.patience` > 0, training stops
after that many scorings without improvement.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from editing.evaluate import counterfactual_error, mask_mass_inside, region_masks, success_by_direction
from editing.originals import Originals, load_originals
from editing.quality import TARGETS
from pipeline.images import batch_to_model_range
from pipeline.layout import RunLayout

PRESERVATION_LIMIT = TARGETS["outside_change"][1]  # mean absolute change outside the true region ([-1, 1] scale)
SUCCESS_TARGET = TARGETS["added"][1]  # both directions, by the judge
POOL = 10  # validation faces decoded: POOL x editor.valid_images at most (the balanced subsets are drawn from them)


def criterion(mask_target: float | None = None) -> str:
    """The criterion `rank` applies, in words (written into selection.json)."""
    tier = ("" if mask_target is None else f"then whether both directions succeed on >= {SUCCESS_TARGET:.0%} and the mask's "
            f"mass inside the true region is >= {mask_target:.2f}, ")
    return (f"change outside the true region <= {PRESERVATION_LIMIT} first, {tier}then the weaker direction's success (judge), "
            "then the smaller error to the true counterfactual")



class Validator:
    """Scores an editor on the run's validation faces (module docstring)."""

    def __init__(self, pool: Originals, judge, truth: Callable | None = None, faces_per_attribute: int = 400,
                 batch_size: int = 64):
        self.pool = pool
        self.judge = judge
        self.truth = truth
        self.n = faces_per_attribute
        self.batch_size = batch_size
        self._chosen: dict[str, tuple[Originals, torch.Tensor]] = {}
        self._true: dict[str, torch.Tensor] = {}

    @classmethod
    def for_run(cls, cfg, progress: Callable[[str], None] = print) -> Validator:
        from editing.counterfactual import truth_for
        from editing.evaluate import get_judge

        n = cfg.editor.valid_images
        pool = load_originals([RunLayout(cfg).originals], "valid", limit=POOL * n)
        progress(f"editor checkpoints are chosen on {n} validation faces per attribute (half with it where there are "
                 f"enough), from {len(pool.images)} faces of {len(set(pool.identities.tolist()))} identities (split 'valid')")
        return cls(pool, get_judge(cfg, progress), truth_for(cfg), faces_per_attribute=n)

    def faces(self, attribute: str) -> Originals:
        """The validation faces `attribute`'s edits are judged on (balanced: `Originals.balanced`)."""
        return self._faces(attribute)[0]

    def _faces(self, attribute: str) -> tuple[Originals, torch.Tensor]:
        if attribute not in self._chosen:
            faces = self.pool.balanced(attribute, self.n)
            self._chosen[attribute] = faces, batch_to_model_range(faces.images)
        return self._chosen[attribute]

    def _true_edit(self, attribute: str, target: torch.Tensor) -> torch.Tensor:
        if attribute not in self._true:  # the truth does not change between checkpoints: render it once
            faces, _ = self._faces(attribute)
            sources, size = faces.source_ids, faces.images.shape[-1]
            self._true[attribute] = torch.cat([self.truth(sources[i: i + self.batch_size], attribute, target[i: i + self.batch_size], size)
                                               for i in range(0, len(sources), self.batch_size)])
        return self._true[attribute]

    @torch.inference_mode()
    def score(self, editor, attribute: str) -> dict:
        """One editor on one attribute: success both ways, change outside the region, error to the true edit."""
        faces, original = self._faces(attribute)
        labels = faces.labels(attribute)
        target = 1 - labels
        sources = faces.source_ids
        results = [editor.apply(original[i: i + self.batch_size], target[i: i + self.batch_size], sources[i: i + self.batch_size])
                   for i in range(0, len(labels), self.batch_size)]
        edited = torch.cat([r.images.float() for r in results])
        mask = torch.cat([r.mask.float() for r in results]) if all(r.mask is not None for r in results) else None
        p = torch.cat([self.judge.predict(edited[i: i + 256], attribute) for i in range(0, len(labels), 256)])
        success = success_by_direction(p, labels)
        out = {"added": success["added"]["success_rate"], "removed": success["removed"]["success_rate"],
               "faces": {d: success[d]["images"] for d in ("added", "removed")}}
        if faces.regions is not None:
            region = region_masks(faces.regions, attribute)
            change = (edited - original).abs().mean(dim=1, keepdim=True)
            out["outside_change"] = (change * ~region).sum().item() / max((~region).sum().item(), 1)
            if mask is not None:
                out["mask_mass_inside"] = mask_mass_inside(mask, region)
            if self.truth is not None:
                out["counterfactual_ratio"] = counterfactual_error(edited, original, self._true_edit(attribute, target), region)["ratio_inside"]
        return out

    def score_all(self, editor, attributes: list[str]) -> dict:
        """Scores per attribute (a multi-attribute editor is rebound to each), and the summary `rank` compares."""
        per = {}
        for attribute in attributes:
            bound = editor.for_attribute(attribute) if hasattr(editor, "for_attribute") else editor
            per[attribute] = self.score(bound, attribute)
        return {"attributes": per, **summarise(per)}


def summarise(per: dict[str, dict]) -> dict:
    successes = [s for scores in per.values() for s in (scores["added"], scores["removed"]) if s is not None]
    outside = [scores["outside_change"] for scores in per.values() if "outside_change" in scores]
    ratios = [scores["counterfactual_ratio"] for scores in per.values() if "counterfactual_ratio" in scores]
    masks = [scores.get("mask_mass_inside") for scores in per.values()]
    return {"weaker_direction": min(successes) if successes else 0.0,
            "outside_change": max(outside) if outside else None,
            "counterfactual_ratio": sum(ratios) / len(ratios) if ratios else None,
            "mask_mass_inside": None if not masks or None in masks else min(masks)}


def rank(summary: dict, mask_target: float | None = None) -> tuple:
    """The criterion (module docstring) as a tuple: larger is better. Every summary compared must use the same
    `mask_target`."""
    preserved = summary["outside_change"] is None or summary["outside_change"] <= PRESERVATION_LIMIT
    ratio = summary["counterfactual_ratio"]
    tail = (round(summary["weaker_direction"], 6), -(ratio if ratio is not None else 0.0))
    if mask_target is None:
        return (preserved, *tail)
    mask = summary.get("mask_mass_inside")
    meets = summary["weaker_direction"] >= SUCCESS_TARGET and mask is not None and mask >= mask_target
    return (preserved, meets, *tail)
