"""Shards open in Hugging Face `datasets` as images, with no faceaug code on the reading side."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.shards import ShardStore, make_row


def _rows(n: int, size: int = 12) -> tuple[list[dict], list[np.ndarray]]:
    rng = np.random.default_rng(7)
    rows, arrays = [], []
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        kind = ("original", "added")[i % 2]
        rows.append(make_row(image=img, identity=40 + i % 3, source_image_id=f"{i:06d}.jpg", split="train", edit_kind=kind,
                             attribute_edited=None if kind == "original" else "eyeglasses", attributes=rng.integers(0, 2, 40),
                             regions=(img[:, :, 0] > 128).astype(np.uint8) if i % 3 else None))
        arrays.append(img)
    return rows, arrays


@pytest.fixture
def datasets(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # local files only: nothing to fetch
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return pytest.importorskip("datasets")


def test_the_features_are_written_as_datasets_writes_them(tmp_path, datasets):
    store = ShardStore(tmp_path / "ds")
    store.write_shard("part-00000", _rows(4)[0])
    schema = pq.read_schema(store.shard_path("part-00000"))
    written = json.loads(schema.metadata[b"huggingface"])
    features = datasets.Features.from_arrow_schema(schema)  # uses the metadata only where it matches the field
    assert {"info": {"features": features.to_dict()}} == written
    assert isinstance(features["image"], datasets.Image)
    assert features["attributes"].feature == datasets.Value("int8") and features["attributes"].length == 40
    assert features["identity"] == datasets.Value("int64") and features["height"] == datasets.Value("int16")
    assert features["regions"] == datasets.Value("binary") and features["editor"] == datasets.Value("string")


def test_load_dataset_gives_the_decoded_faces(tmp_path, datasets):
    rows, arrays = _rows(10)
    store = ShardStore(tmp_path / "ds", metadata={"dataset": "aug-eyeglasses"})
    store.write_shard("part-00000", rows[:6], row_group_size=4)
    store.write_shard("part-00001", rows[6:])
    files = [store.url_of(e) for e in store.entries()]
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == len(rows)
    by_id = {r["sample_id"]: r for r in ds}
    for want, pixels in zip(rows, arrays):
        got = by_id[want["sample_id"]]
        assert isinstance(got["image"], Image.Image) and got["image"].mode == "RGB"
        assert np.array_equal(np.asarray(got["image"]), pixels)
        assert got["attributes"] == want["attributes"] and got["identity"] == want["identity"]
        assert (got["edit_kind"], got["attribute_edited"], got["regions"]) == (want["edit_kind"], want["attribute_edited"], want["regions"])
