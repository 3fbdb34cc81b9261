"""Augmentation into shards: three samples per train image, provenance recorded, resumable without duplicates."""

import numpy as np

from editing.augment import augment_attribute
from editing.base import Editor, EditResult
from pipeline.attributes import index_of
from pipeline.shards import ShardStore
from _stores import make_originals_store


class Brighten(Editor):
    """A deterministic stand-in editor: +0.5 for 'added', -0.5 for 'removed'."""

    name = "brighten"

    @classmethod
    def load(cls, directory=None, device="cpu"):
        return cls(("eyeglasses",), checkpoint_id="abc123")

    def edit(self, images, target):
        return EditResult((images + (target.view(-1, 1, 1, 1) - 0.5)).clamp(-1, 1))


def test_three_samples_per_train_image_with_provenance(tmp_path):
    src = make_originals_store(tmp_path / "originals")
    summary = augment_attribute(Brighten.load(), "eyeglasses", src.root, str(tmp_path / "aug"), rows_per_shard=5, batch_size=4, progress=lambda m: None)
    train = [r for r in src.read_table().to_pylist() if r["split"] == "train"]
    out = ShardStore(str(tmp_path / "aug"))
    assert out.verify().ok
    rows = out.read_table().to_pylist()
    assert len(rows) == 3 * len(train) == summary["rows"]
    by_id = {r["sample_id"]: r for r in rows}
    col = index_of("eyeglasses")
    for r in train:
        src_id = r["source_image_id"]
        orig, added, removed = by_id[f"{src_id}/original"], by_id[f"{src_id}/eyeglasses/added"], by_id[f"{src_id}/eyeglasses/removed"]
        assert orig["image"] == r["image"] and orig["edit_kind"] == "original" and orig["editor"] is None
        for row, value in ((added, 1), (removed, 0)):
            assert row["identity"] == r["identity"] and row["split"] == "train"
            assert row["attributes"][col] == value
            assert [a for i, a in enumerate(row["attributes"]) if i != col] == [a for i, a in enumerate(r["attributes"]) if i != col]
            assert (row["editor"], row["editor_checkpoint"], row["attribute_edited"]) == ("brighten", "abc123", "eyeglasses")
            assert row["regions"] == r["regions"]
    from PIL import Image
    import io
    a = np.asarray(Image.open(io.BytesIO(by_id[f"{train[0]['source_image_id']}/eyeglasses/added"]["image"]["bytes"]))).astype(int)
    o = np.asarray(Image.open(io.BytesIO(train[0]["image"]["bytes"]))).astype(int)
    assert np.abs(a - np.clip(o + 64, 0, 255)).max() <= 1  # +0.5 on [-1, 1] is +63.75 levels


def test_interrupted_augmentation_resumes_without_duplicates(tmp_path):
    src = make_originals_store(tmp_path / "originals")
    out = tmp_path / "aug"
    first = augment_attribute(Brighten.load(), "eyeglasses", src.root, str(out), rows_per_shard=4, progress=lambda m: None)
    complete = sorted(ShardStore(str(out)).read_table(columns=["sample_id"]).column("sample_id").to_pylist())
    (out / "_manifest" / "part-00001.json").unlink()  # killed before the entry was written
    again = augment_attribute(Brighten.load(), "eyeglasses", src.root, str(out), rows_per_shard=4, progress=lambda m: None)
    assert again["shards_reused"] == first["shards"] - 1
    store = ShardStore(str(out))
    assert store.verify().ok
    assert sorted(store.read_table(columns=["sample_id"]).column("sample_id").to_pylist()) == complete
