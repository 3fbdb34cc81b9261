"""Helpers shared by the editor trainers: in-memory training images, checkpoints, sample grids, logs."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.attributes import index_of


@dataclass
class Originals:
    """Decoded originals of one split, held in memory."""

    images: torch.Tensor  # N x 3 x H x W uint8
    attributes: torch.Tensor  # N x 40 int8 (0/1)
    identities: torch.Tensor  # N int64
    regions: torch.Tensor | None  # N x H x W uint8 bitmasks (bit k = EDITED_ATTRIBUTES[k]), or None
    sample_ids: list[str]

    def labels(self, attribute: str) -> torch.Tensor:
        return self.attributes[:, index_of(attribute)].float()


def decode_image(blob: bytes, mode: str = "RGB") -> np.ndarray:
    """Shard image bytes -> HxWx3 (RGB) or HxW (L) uint8."""
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert(mode), dtype=np.uint8)


def load_originals(shard_paths: list[str], split: str = "train", limit: int | None = None) -> Originals:
    """Decode the originals of `split` into memory.

    Editors sample random batches by index from a seeded generator, so a resumed run
    draws exactly the batches an uninterrupted one would. Holding uint8 pixels costs
    3*H*W bytes per image (the synthetic demo: ~60 MB; real CelebA at 128 px: ~9.4 GB).
    """
    from pipeline.shards import ShardStore

    images, attrs, ids, regions, sample_ids = [], [], [], [], []
    for path in shard_paths:
        table = ShardStore(path).read_table(
            columns=["sample_id", "image", "attributes", "identity", "edit_kind", "regions"], filter_split=split)
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        for i, kind in enumerate(cols["edit_kind"]):
            if kind != "original":
                continue
            images.append(decode_image(cols["image"][i]))
            attrs.append(cols["attributes"][i])
            ids.append(cols["identity"][i])
            sample_ids.append(cols["sample_id"][i])
            blob = cols["regions"][i]
            regions.append(None if blob is None else decode_image(blob, "L"))
            if limit is not None and len(images) >= limit:
                break
    if not images:
        raise ValueError(f"no '{split}' originals in {shard_paths}")
    has_regions = all(r is not None for r in regions)
    return Originals(
        images=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
        attributes=torch.tensor(attrs, dtype=torch.int8),
        identities=torch.tensor(ids, dtype=torch.int64),
        regions=torch.from_numpy(np.stack(regions)) if has_regions else None,
        sample_ids=sample_ids,
    )


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    return batch_uint8.float().div_(127.5).sub_(1.0)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training precision setting: auto = bf16 on GPUs, fp32 (None) on CPUs."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def drop_unset(key: dict, added_later: dict) -> dict:
    """Remove from a training key (in place) the fields that were added after runs had been keyed without
    them, wherever they still hold their default: existing checkpoints then still match, and a field
    enters the key only once it is set. Returns `key`."""
    for field, default in added_later.items():
        if key.get(field) == default:
            del key[field]
    return key


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
