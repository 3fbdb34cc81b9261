"""Helpers shared by the editor trainers: in-memory training images, checkpoints, sample grids, logs."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.attributes import index_of


def load_training_images(shard_paths: list[str], attribute: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the originals of `split` into memory: (N x 3 x H x W uint8, N labels 0/1 for `attribute`).

    Editors sample random batches by index from a seeded generator, so a resumed run
    draws exactly the batches an uninterrupted one would. Holding uint8 pixels costs
    3*H*W bytes per image (the synthetic demo: ~60 MB; real CelebA at 128 px: ~9.4 GB).
    """
    from pipeline.shards import ShardStore

    column = index_of(attribute)
    images, labels = [], []
    for path in shard_paths:
        table = ShardStore(path).read_table(columns=["image", "attributes", "edit_kind"], filter_split=split)
        kinds = table.column("edit_kind").to_pylist()
        attrs = table.column("attributes").to_pylist()
        for blob, kind, vec in zip(table.column("image").to_pylist(), kinds, attrs):
            if kind != "original":
                continue
            with Image.open(io.BytesIO(blob)) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(vec[column])
    if not images:
        raise ValueError(f"no '{split}' originals in {shard_paths}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.float32)


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    return batch_uint8.float().div_(127.5).sub_(1.0)


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def sample_grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """A grid of images; each cell is 3xHxW in [-1, 1] or 1xHxW in [0, 1] (masks) / [-1, 1] residuals."""
    cells = []
    for row in rows:
        line = []
        for cell in row:
            c = cell.detach().float().cpu()
            if c.shape[0] == 1:
                c = c.repeat(3, 1, 1) * 2 - 1
            line.append(((c.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
        cells.append(np.concatenate(line, axis=1))
    return Image.fromarray(np.concatenate(cells, axis=0))
