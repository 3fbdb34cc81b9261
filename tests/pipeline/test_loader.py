"""ShardImageDataset: exactly-once per epoch, shuffling, filters, labels, item format."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.images import encode_png
from pipeline.loader import ShardImageDataset
from pipeline.shards import ShardStore, make_row

SIZE = 16
KINDS = ("original", "added", "removed")


def _write_store(path, start: int, n_sources: int, n_shards: int, attribute: str | None) -> list[dict]:
    """A store of n_sources images (x3 kinds, or originals only) in n_shards shards of 4-row groups."""
    rng = np.random.default_rng(start)
    store = ShardStore(path, metadata={"attribute": attribute})
    kinds = KINDS if attribute else ("original",)
    rows = []
    for i in range(start, start + n_sources):
        for kind in kinds:
            rows.append(make_row(
                image=rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), identity=10 * (i % 5) + 7,
                source_image_id=f"{i:06d}.jpg", split="valid" if i % 6 == 0 else "train", edit_kind=kind,
                attribute_edited=None if kind == "original" else attribute, attributes=rng.integers(0, 2, 40),
            ))
    per = -(-len(rows) // n_shards)
    for k in range(n_shards):
        store.write_shard(f"part-{k:05d}", rows[k * per : (k + 1) * per], row_group_size=4)
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    glasses = _write_store(root / "eyeglasses", 0, 20, 3, "eyeglasses")  # 60 rows
    baseline = _write_store(root / "baseline", 100, 12, 2, None)  # 12 rows, ids distinct from above
    return root, glasses, baseline


def _ids(ds, num_workers=0, batch_size=5):
    if num_workers == 0 and batch_size is None:
        return [item["sample_id"] for item in ds]
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    return [sid for batch in loader for sid in batch["sample_id"]]


def _expected(rows, split="train", kinds=None):
    return sorted(r["sample_id"] for r in rows if r["split"] == split and (kinds is None or r["edit_kind"] in kinds))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_sample_once_per_epoch(stores, num_workers):
    root, glasses, baseline = stores
    ds = ShardImageDataset([root / "eyeglasses", root / "baseline"], shuffle_buffer=8)
    want = _expected(glasses) + _expected(baseline)
    assert len(ds) == len(want)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got = _ids(ds, num_workers=num_workers)
        assert Counter(got) == Counter(want)


def test_ranks_partition_the_data(stores):
    root, glasses, _ = stores
    parts = [_ids(ShardImageDataset(root / "eyeglasses", rank=r, world_size=3), batch_size=None) for r in range(3)]
    assert sorted(sum(parts, [])) == _expected(glasses)
    assert all(parts)


def test_shuffle_depends_on_epoch_and_seed(stores):
    root, _, _ = stores
    paths = [root / "eyeglasses", root / "baseline"]
    a = ShardImageDataset(paths, seed=1, shuffle_buffer=16)
    b = ShardImageDataset(paths, seed=1, shuffle_buffer=16)
    first = _ids(a, batch_size=None)
    assert first == _ids(b, batch_size=None)  # same seed, same epoch: same order
    a.set_epoch(1)
    second = _ids(a, batch_size=None)
    assert second != first and sorted(second) == sorted(first)
    assert _ids(ShardImageDataset(paths, seed=2, shuffle_buffer=16), batch_size=None) != first
    # Without shuffling the order is the stored one.
    plain = _ids(ShardImageDataset(root / "eyeglasses", shuffle=False), batch_size=None)
    assert plain == [sid for sid in (r["sample_id"] for r in stores[1]) if sid in set(plain)]


def test_filters_split_and_edit_kind(stores):
    root, glasses, _ = stores
    ds = ShardImageDataset(root / "eyeglasses", split="valid", edit_kinds=["added", "removed"],
                           columns=["edit_kind", "source_image_id"])
    items = list(ds)
    want = _expected(glasses, split="valid", kinds=("added", "removed"))
    assert len(ds) == len(want) == len(items) > 0
    assert sorted(i["sample_id"] for i in items) == want
    assert {i["edit_kind"] for i in items} == {"added", "removed"}
    everything = ShardImageDataset(root / "eyeglasses", split=None)
    assert len(everything) == 60
    with pytest.raises(ValueError, match="edit_kinds"):
        ShardImageDataset(root / "eyeglasses", edit_kinds=["flipped"])


def test_labels_contiguous_and_label_map(stores):
    root, glasses, baseline = stores
    ds = ShardImageDataset([root / "eyeglasses", root / "baseline"])
    idents = sorted({r["identity"] for r in glasses + baseline if r["split"] == "train"})
    assert ds.label_map == {ident: i for i, ident in enumerate(idents)}
    assert ds.num_classes == len(idents)
    for item in ds:
        assert item["label"] == ds.label_map[item["identity"]]
    custom = {ident: 100 + i for i, ident in enumerate(idents)}
    ds2 = ShardImageDataset([root / "eyeglasses", root / "baseline"], label_map=custom)
    assert ds2.num_classes == 100 + len(idents)
    with pytest.raises(ValueError, match="label_map lacks"):
        ShardImageDataset(root / "eyeglasses", label_map={7: 0})


def test_item_format_and_values(stores):
    root, glasses, _ = stores
    by_id = {r["sample_id"]: r for r in glasses}
    batch = next(iter(DataLoader(ShardImageDataset(root / "eyeglasses", image_size=SIZE), batch_size=4)))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64
    assert batch["attributes"].shape == (4, 40) and batch["attributes"].dtype == torch.int8
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    for k, sid in enumerate(batch["sample_id"]):
        row = by_id[sid]
        assert batch["attributes"][k].tolist() == row["attributes"]
        assert int(batch["identity"][k]) == row["identity"]
        # Pixels come back exactly: uint8 -> [-1, 1] -> uint8.
        img = ((batch["image"][k].permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
        assert encode_png(img) == row["image"]["bytes"]


def test_flip_is_seeded_and_flips(stores):
    root, glasses, _ = stores
    plain = {i["sample_id"]: i["image"] for i in ShardImageDataset(root / "eyeglasses", shuffle=False)}
    f1 = list(ShardImageDataset(root / "eyeglasses", shuffle=False, flip=True, seed=3))
    f2 = list(ShardImageDataset(root / "eyeglasses", shuffle=False, flip=True, seed=3))
    flipped = 0
    for a, b in zip(f1, f2):
        assert torch.equal(a["image"], b["image"])
        if torch.equal(a["image"], plain[a["sample_id"]].flip(-1)):
            flipped += 1
        else:
            assert torch.equal(a["image"], plain[a["sample_id"]])
    assert 0 < flipped < len(f1)


def test_wrong_image_size_names_shard_and_sample(stores):
    root, _, _ = stores
    with pytest.raises(ValueError, match=r"part-0000\d\.parquet: sample '.*' is 16x16, expected image_size 32x32"):
        next(iter(ShardImageDataset(root / "eyeglasses", image_size=32)))


def test_memory_store_loader():
    import uuid

    root = f"memory://faceaug-loader-{uuid.uuid4().hex}/ds"
    rows = _write_store(root, 0, 8, 2, "smiling")
    ds = ShardImageDataset(root)
    assert sorted(i["sample_id"] for i in ds) == _expected(rows)


def test_per_source_edit_kinds(stores):
    """aug-all style: originals of one store plus only the edits of another, in one dataset."""
    root, glasses, baseline = stores
    ds = ShardImageDataset([(root / "baseline", None), (str(root / "eyeglasses"), ("added", "removed"))],
                           columns=["edit_kind"])
    want = sorted(_expected(baseline) + _expected(glasses, kinds=("added", "removed")))
    items = list(ds)
    assert len(ds) == len(items) == len(want)
    assert sorted(i["sample_id"] for i in items) == want
    # A bare path keeps taking the global filter, a pair overrides it.
    mixed = ShardImageDataset([root / "baseline", (root / "eyeglasses", ["removed"])], edit_kinds=["original"])
    assert sorted(i["sample_id"] for i in mixed) == sorted(_expected(baseline) + _expected(glasses, kinds=("removed",)))
    with pytest.raises(ValueError, match="edit_kinds"):
        ShardImageDataset([(root / "eyeglasses", ("flipped",))])


def test_rows_of_other_splits_in_new_row_groups_do_not_change_the_stream(tmp_path):
    """More test identities land after the training rows, in new row groups of the last shard (as the evidence
    run's 800 extra test identities did): the training stream -- units, order, fingerprint -- stays the same."""
    rng = np.random.default_rng(3)

    def rows(split, first, n):
        return [make_row(image=rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), identity=first + i % 3,
                         source_image_id=f"{first + i:06d}.jpg", split=split, edit_kind="original",
                         attribute_edited=None, attributes=np.zeros(40, dtype=np.int8)) for i in range(n)]

    train, test = rows("train", 0, 10), rows("test", 100, 12)
    small, large = ShardStore(tmp_path / "small"), ShardStore(tmp_path / "large")
    small.write_shard("part-00000", train + test[:2], row_group_size=4)  # groups: 4 train, 4 train, 2 train + 2 test
    large.write_shard("part-00000", train + test, row_group_size=4)  # + three groups of test rows only
    a, b = (ShardImageDataset(s.path, split="train", seed=5) for s in (small, large))
    assert len(large.entries()[0].row_groups) == len(small.entries()[0].row_groups) + 3
    assert a.units == b.units and len(a) == len(b) == 10
    assert a.fingerprint() == b.fingerprint()
    assert [i["sample_id"] for i in a] == [i["sample_id"] for i in b]
