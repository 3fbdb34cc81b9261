"""The originals of one split, decoded into memory for the editor trainers, the judge and the scorers.

Editors sample random batches by index from a seeded generator, so a resumed run draws exactly
the batches an uninterrupted one would. Holding uint8 pixels costs 3*H*W bytes per image (the
synthetic demo: ~60 MB; real CelebA at 128 px: ~9.4 GB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.attributes import index_of
from pipeline.images import decode_mask, decode_rgb


@dataclass
class Originals:
    """Decoded originals of one split."""

    images: torch.Tensor  # N x 3 x H x W uint8
    attributes: torch.Tensor  # N x 40 int8 (0/1)
    identities: torch.Tensor  # N int64
    regions: torch.Tensor | None  # N x H x W uint8 bitmasks (pipeline.attributes.REGION_BITS), or None
    sample_ids: list[str]

    def labels(self, attribute: str) -> torch.Tensor:
        return self.attributes[:, index_of(attribute)].float()

    def subset(self, index: torch.Tensor) -> Originals:
        """The faces at `index` (a 1-D index tensor), in that order."""
        return Originals(images=self.images[index], attributes=self.attributes[index], identities=self.identities[index],
                         regions=None if self.regions is None else self.regions[index],
                         sample_ids=[self.sample_ids[i] for i in index.tolist()])

    def balanced(self, attribute: str, n: int) -> Originals:
        """Up to `n` faces, half with the attribute and half without where there are enough (the rest from
        the other side), in their original order: both edit directions are judged on enough faces even for a
        rare attribute (glasses are on 6.5% of CelebA's faces; 400 faces in file order hold about 26)."""
        labels = self.labels(attribute) > 0.5
        have, lack = torch.nonzero(labels).flatten(), torch.nonzero(~labels).flatten()
        lack = lack[: max(n - min(len(have), n // 2), 0)]
        have = have[: n - len(lack)]
        return self.subset(torch.sort(torch.cat([have, lack])).values)

    @property
    def source_ids(self) -> list[str]:
        """The source image id of each sample ('000123.jpg' of '000123.jpg/original')."""
        return [sid.split("/", 1)[0] for sid in self.sample_ids]


def load_originals(shard_paths: list[str], split: str = "train", limit: int | None = None) -> Originals:
    """Decode the originals of `split` from shard datasets into memory (at most `limit` of them)."""
    from pipeline.shards import ShardStore, image_bytes

    images, attrs, ids, regions, sample_ids = [], [], [], [], []
    for path in shard_paths:
        table = ShardStore(path).read_table(
            columns=["sample_id", "image", "attributes", "identity", "edit_kind", "regions"], filter_split=split)
        cols = {name: table.column(name).to_pylist() for name in table.column_names if name != "image"}
        cols["image"] = image_bytes(table.column("image")).to_pylist()
        for i, kind in enumerate(cols["edit_kind"]):
            if kind != "original":
                continue
            where = f"{path}: sample {cols['sample_id'][i]!r}"
            images.append(decode_rgb(cols["image"][i], where))
            attrs.append(cols["attributes"][i])
            ids.append(cols["identity"][i])
            sample_ids.append(cols["sample_id"][i])
            blob = cols["regions"][i]
            regions.append(None if blob is None else decode_mask(blob, f"{where} (regions)"))
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
