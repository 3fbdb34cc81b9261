"""How close to the true counterfactual can an editor get without knowing the face's hidden traits?

The editor target "in-region error to the true counterfactual at most half of no edit" (docs/editors.md) asks
an edit to match the renderer's own pixels. Some of those pixels are set by traits of the identity that an
image without the attribute does not show: the frame shape, colour, tint and thickness of the glasses a person
would wear, the style of beard a person would grow (`pipeline.synth.population.Identity`). An editor, however
good, can only guess them. This benchmark measures what guessing costs, with the renderer itself as the editor:

- `resampled`: the true counterfactual rendered again with the hidden traits of another identity of the
  benchmark (a plausible guess from the population; K guesses, averaged);
- `median of K`: the pixel-wise median of the K resampled renderings, close to the best single image under the
  mean absolute error for an editor that knows everything but the hidden traits.

Both are scored exactly like an editor (`editing.evaluate.counterfactual_error`: mean absolute error inside the
attribute's true region over the no-edit error) on the run's held-out test faces, per direction. Smiling and
an open mouth have no hidden trait in the renderer: their truth is a function of the visible face, so a ratio of
0 is reachable in principle and they are listed as such.

    python benchmarks/counterfactual_bound.py --profile evidence [--set ...] [--draws 8] [--limit 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from editing.counterfactual import rendered_truth
from editing.evaluate import counterfactual_error, held_out, region_masks
from pipeline.config import load_config
from pipeline.images import batch_to_model_range
from pipeline.ingest import benchmark_of
from pipeline.layout import RunLayout
from pipeline.synth import RenderRecords

# The Identity fields only one attribute's rendering reads (pipeline.synth.faces: _draw_glasses, _paste_beard).
HIDDEN = {"eyeglasses": ("glasses_shape", "glasses_rgb", "glasses_tint", "glasses_thick"), "no_beard": ("beard_style",),
          "mouth_slightly_open": (), "smiling": ()}


def resampled_records(records: RenderRecords, fields: tuple[str, ...], rng: np.random.Generator) -> RenderRecords:
    """The same benchmark, every identity's `fields` taken from a randomly drawn other identity."""
    ids = records.identities
    donors = rng.integers(len(ids), size=len(ids))
    return dataclasses.replace(records, identities=[
        dataclasses.replace(ident, **{f: getattr(ids[d], f) for f in fields}) for ident, d in zip(ids, donors)])


def bound(cfg, attribute: str, draws: int, limit: int | None, seed: int = 0) -> dict:
    test = held_out(cfg)
    if limit:
        test = test.subset(torch.arange(min(limit, len(test.images))))
    records = RenderRecords.read(benchmark_of(RunLayout(cfg).originals))
    size = test.images.shape[-1]
    labels = test.labels(attribute)
    sources = test.source_ids
    target = 1 - labels  # the flipped label
    truth = rendered_truth(records, sources, attribute, target, size)
    original = batch_to_model_range(test.images)
    region = region_masks(test.regions, attribute)
    out = {"faces": len(sources), "hidden_traits": list(HIDDEN[attribute]), "draws": draws}
    if not HIDDEN[attribute]:
        return out | {"note": "no hidden trait: the truth is a function of the visible face; ratio 0 is reachable"}
    rng = np.random.default_rng(seed)
    guesses = torch.stack([rendered_truth(resampled_records(records, HIDDEN[attribute], rng), sources, attribute, target, size)
                           for _ in range(draws)])
    median = guesses.median(dim=0).values
    for direction, chosen in (("added", labels < 0.5), ("removed", labels > 0.5)):
        if not chosen.any():
            continue
        one = [counterfactual_error(g[chosen], original[chosen], truth[chosen], region[chosen])["ratio_inside"] for g in guesses]
        out[direction] = {"faces": int(chosen.sum()),
                          "resampled_ratio": float(np.mean(one)), "resampled_ratio_range": [float(min(one)), float(max(one))],
                          "median_ratio": counterfactual_error(median[chosen], original[chosen], truth[chosen], region[chosen])["ratio_inside"]}
    one = [counterfactual_error(g, original, truth, region)["ratio_inside"] for g in guesses]
    out["both"] = {"resampled_ratio": float(np.mean(one)), "median_ratio": counterfactual_error(median, original, truth, region)["ratio_inside"]}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="evidence")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--attribute", action="append")
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--limit", type=int)
    p.add_argument("--out")
    a = p.parse_args(argv)
    cfg = load_config(a.profile, a.overrides)
    result = {}
    for attribute in a.attribute or list(HIDDEN):
        t = time.time()
        result[attribute] = bound(cfg, attribute, a.draws, a.limit)
        print(f"{attribute} ({time.time() - t:.0f} s): {json.dumps(result[attribute])}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
