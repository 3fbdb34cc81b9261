"""Tiny shard datasets built directly, for tests of stages downstream of ingest."""

from __future__ import annotations

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES, index_of
from pipeline.shards import ShardStore, make_row


def make_originals_store(path, *, identities: int = 6, per_identity: int = 4, size: int = 32, seed: int = 0, test_identities: int = 2) -> ShardStore:
    """Faces stand-ins: a per-identity colour, a dark 'glasses' bar when Eyeglasses=1, with regions."""
    rng = np.random.default_rng(seed)
    rows = []
    yy, xx = np.mgrid[0:size, 0:size]
    glasses_region = (yy > size * 0.3) & (yy < size * 0.45)
    mouth_region = (yy > size * 0.65) & (yy < size * 0.8) & (xx > size * 0.3) & (xx < size * 0.7)
    bits = (glasses_region * 1 | mouth_region * 2 | mouth_region * 4 | (yy > size * 0.7) * 8).astype(np.uint8)
    n = 0
    for ident in range(1, identities + 1):
        colour = rng.integers(40, 220, 3)
        for k in range(per_identity):
            n += 1
            attrs = np.zeros(len(CELEBA_ATTRIBUTES), np.int8)
            has = (n % 3 == 0)
            attrs[index_of("Eyeglasses")] = has
            attrs[index_of("Smiling")] = n % 2
            img = np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
            if has:
                img[glasses_region] = 20
            rows.append(make_row(
                image=img, identity=ident, source_image_id=f"{n:06d}.jpg",
                split="test" if ident > identities - test_identities else "train",
                edit_kind="original", attributes=attrs, regions=bits,
            ))
    store = ShardStore(str(path), metadata={"dataset": "originals"})
    store.write_shard("part-00000", rows[: len(rows) // 2])
    store.write_shard("part-00001", rows[len(rows) // 2 :])
    return store
