"""The `counterfactual` editor: the true edit, for the synthetic benchmark only.

The synthetic renderer is a pure function of (identity, labels, image parameters, style)
(`pipeline.synth.recipe`), so any training face can be rendered again with one attribute flipped and
nothing else changed: the same person, pose, light, noise and JPEG quality. This editor returns
exactly that re-rendering, passed through the same decoding and preprocessing as the ingested
originals, so an edit toward the face's own label gives back the original bit for bit.

It is the experiment's **positive control**: `aug-<attribute>@counterfactual` arms show the benefit
a perfect editor would bring, beside the no-edit control (`aug-<attribute>@identity`). It is also
the truth every other editor's edits are measured against (`editing.evaluate`: error to the true
counterfactual inside and outside the attribute's region).

"Training" reads the benchmark the run's originals came from (the shard metadata names it),
checks that its render records re-make images byte-exactly, and writes editor.json. On real data
there are no render records, and it stops with an error that says it exists only for the
synthetic benchmark. Its mask is the ground-truth region of the attribute.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from editing.base import Editor, EditResult, Trainer
from editing.registry import EditorPlugin
from pipeline.atomic import write_json_atomic
from pipeline.attributes import index_of, region_mask
from pipeline.images import batch_from_model_range, batch_to_model_range
from pipeline.layout import EDITOR_JSON

VERIFY_IMAGES = 8  # originals re-rendered byte-exactly before the editor is accepted


class CounterfactualEditor(Editor):
    name = "counterfactual"
    version = "1"
    has_mask = True  # the true region of the attribute
    needs_sources = True

    def __init__(self, records, attribute: str, image_size: int, checkpoint_id: str, benchmark: str = ""):
        super().__init__((attribute,), checkpoint_id)
        self.records = records
        self.attribute = attribute
        self.image_size = image_size
        self.benchmark = benchmark

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "CounterfactualEditor":
        from pipeline.synth import RenderRecords

        path = Path(directory) / EDITOR_JSON
        if not path.exists():
            raise FileNotFoundError(f"{path}: no counterfactual editor here (train it with `faceaug editors train`)")
        meta = json.loads(path.read_text())
        records = RenderRecords.read(meta["benchmark"])
        return cls(records, meta["attribute"], int(meta["image_size"]), meta["checkpoint_id"], meta["benchmark"])

    def truth(self, sources: list[str], values) -> tuple[np.ndarray, np.ndarray]:
        """(N x H x W x 3 uint8 pixels, N x H x W region bits) of the faces re-rendered with the attribute set to `values`."""
        pixels, regions = zip(*(self.records.ingested(s, self.attribute, int(v), self.image_size) for s, v in zip(sources, values)))
        return np.stack(pixels), np.stack(regions)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor, sources: list[str] | None = None) -> EditResult:
        if sources is None:
            raise ValueError("the counterfactual editor re-renders each face: pass its source image ids (sources=)")
        if not images.shape[0] == target.shape[0] == len(sources):
            raise ValueError(f"{images.shape[0]} images, {target.shape[0]} targets and {len(sources)} sources")
        values = (target > 0.5).to(torch.int64).tolist()
        pixels, regions = self.truth(list(sources), values)
        # Guard against sources that do not match the images: the first face, re-rendered with its own labels,
        # must be the image given.
        own, _ = self.truth(list(sources[:1]), [int(self.records.labels(sources[0])[index_of(self.attribute)])])
        if not np.array_equal(own[0], batch_from_model_range(images[:1])[0]):
            raise ValueError(f"the image given for source {sources[0]!r} is not that face of the benchmark in {self.benchmark}")
        out = batch_to_model_range(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())
        mask = region_mask(torch.from_numpy(regions), self.attribute).float().unsqueeze(1)
        return EditResult(out, mask)


class CounterfactualTrainer(Trainer):
    """Nothing to learn: find the run's benchmark, check its render records re-make images exactly, write editor.json."""

    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print, seed: int = 0) -> Path:
        from pipeline.ingest import benchmark_of
        from pipeline.synth import RenderRecords

        benchmark = benchmark_of(train_shards[0])
        if benchmark is None:
            raise FileNotFoundError(f"{train_shards[0]}: its metadata names no source tree; the counterfactual editor "
                                    "exists only for faceaug's synthetic benchmark")
        records = RenderRecords.read(benchmark)  # on real data: an error saying it exists only for the synthetic benchmark
        checked = 0
        for image_id in sorted(records.images)[:VERIFY_IMAGES]:
            data, _ = records.render(image_id)
            on_disk = (Path(benchmark) / "img_align_celeba" / image_id).read_bytes()
            if data != on_disk:
                raise ValueError(f"{Path(benchmark) / 'img_align_celeba' / image_id}: re-rendering it from "
                                 f"{Path(benchmark) / 'render_params.json'} does not give the same bytes; the render records "
                                 "and the images disagree (rendered by another version of the renderer?)")
            checked += 1
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic({
            "editor": "counterfactual", "version": CounterfactualEditor.version, "attribute": self.attribute,
            "attributes": [self.attribute], "image_size": self.image_size, "benchmark": str(Path(benchmark).resolve()),
            "checkpoint_id": records.digest(), "verified_byte_exact": checked,
        }, self.out_dir / EDITOR_JSON)
        progress(f"counterfactual/{self.attribute}: {checked} originals re-rendered byte-exactly from {benchmark}")
        return self.out_dir


def truth_for(cfg) -> Callable[[list[str], str, torch.Tensor, int], torch.Tensor] | None:
    """The true counterfactual of the run's faces (sources, attribute, target values, size) -> N x 3 x H x W in
    [-1, 1], or None when the run's data is not the synthetic benchmark (no render records)."""
    from pipeline.ingest import benchmark_of
    from pipeline.layout import RunLayout
    from pipeline.synth import RenderRecords

    benchmark = benchmark_of(RunLayout(cfg).originals)
    if benchmark is None or not (Path(benchmark) / "render_params.json").exists():
        return None
    records = RenderRecords.read(benchmark)
    return lambda sources, attribute, values, size: rendered_truth(records, sources, attribute, values, size)


def rendered_truth(records, sources: list[str], attribute: str, values: torch.Tensor, size: int) -> torch.Tensor:
    """The faces `sources` of a benchmark's render records with `attribute` set to `values` (> 0.5: present), as
    ingested, N x 3 x H x W in [-1, 1]."""
    pixels = np.stack([records.ingested(s, attribute, int(v > 0.5), size)[0] for s, v in zip(sources, values.tolist())])
    return batch_to_model_range(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())


PLUGIN = EditorPlugin("counterfactual", CounterfactualEditor, CounterfactualTrainer,
                      "the true counterfactual: the synthetic face re-rendered with the attribute flipped (synthetic benchmark only)")
