"""Bad image files: each is either converted (and counted) or rejected with an error naming the file."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from _trees import jpeg_bytes, make_celeba_tree
from pipeline.celeba import IMAGE_DIR, CelebA, load_many
from pipeline.datacheck import check_celeba
from pipeline.errors import DatasetError
from pipeline.images import BadImageError, ImageReport

IDS = {1: 2, 2: 2, 3: 2}  # 6 images, 000001.jpg ... 000006.jpg


def encoded(mode: str, size=(178, 218), fmt="PNG") -> bytes:
    w, h = size
    rng = np.random.default_rng(7)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65535, size=(h, w), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


CONVERTED = {
    "grayscale": (lambda: encoded("L", fmt="JPEG"), "L->RGB"),
    "cmyk": (lambda: encoded("CMYK", fmt="JPEG"), "CMYK->RGB"),
    "rgba": (lambda: encoded("RGBA"), "RGBA->RGB (alpha dropped)"),
    "palette": (lambda: encoded("P"), "P->RGB"),
    "16-bit png named .jpg": (lambda: encoded("I;16"), "I;16->RGB"),
}

REJECTED = {
    "corrupt (random bytes)": (lambda: np.random.default_rng(3).bytes(5000), "not a recognisable image file"),
    "truncated jpeg": (lambda: jpeg_bytes(seed=5)[: len(jpeg_bytes(seed=5)) // 2], "cannot decode image"),
    "zero bytes": (lambda: b"", "file is empty"),
    "tiny 10x10": (lambda: encoded("RGB", size=(10, 10), fmt="JPEG"), "smaller than the 16px minimum"),
}


@pytest.fixture
def tree(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CONVERTED))
def test_converted_and_counted(tree, case):
    make, conversion = CONVERTED[case]
    (tree / IMAGE_DIR / "000002.jpg").write_bytes(make())
    report = ImageReport()
    out = CelebA.open(tree).load_image("000002.jpg", 64, report)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert report.converted == {conversion: 1}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_with_the_file_named(tree, case):
    make, reason = REJECTED[case]
    path = tree / IMAGE_DIR / "000002.jpg"
    path.write_bytes(make())
    with pytest.raises(BadImageError) as info:
        CelebA.open(tree).load_image("000002.jpg", 64, ImageReport())
    assert info.value.path == str(path) and reason in info.value.reason
    assert str(path) in str(info.value)
    # and `data check --decode` lists it as a problem of that file
    s = check_celeba(tree, decode=True, workers=1, test_identities=1)
    assert [p["file"] for p in s["problems"]] == [f"{IMAGE_DIR}/000002.jpg"]
    assert reason in s["problems"][0]["message"]


def test_wrong_size_is_cropped_resized_and_counted(tree):
    (tree / IMAGE_DIR / "000003.jpg").write_bytes(encoded("RGB", size=(100, 80), fmt="JPEG"))
    report = ImageReport()
    out = CelebA.open(tree).load_image("000003.jpg", 64, report)
    assert out.shape == (64, 64, 3)
    assert report.converted == {"100x80 (not 178x218) cropped and resized": 1}


def test_missing_file(tree):
    path = tree / IMAGE_DIR / "000004.jpg"
    path.unlink()
    with pytest.raises(DatasetError, match="1 listed images are missing from img_align_celeba/: 000004.jpg"):
        CelebA.open(tree)
    with pytest.raises(BadImageError, match="000004.jpg: file does not exist"):
        CelebA.open(tree, check_files=False).load_image("000004.jpg", 64)


def test_directory_where_an_image_should_be(tree):
    path = tree / IMAGE_DIR / "000005.jpg"
    path.unlink()
    path.mkdir()
    with pytest.raises(DatasetError, match="1 listed images are directories, not image files: 000005.jpg"):
        CelebA.open(tree)
    with pytest.raises(BadImageError, match="000005.jpg: is a directory, not an image"):
        CelebA.open(tree, check_files=False).load_image("000005.jpg", 64)


def test_empty_image_directory(tree):
    for f in (tree / IMAGE_DIR).iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="contains no images"):
        CelebA.open(tree)
    os.rmdir(tree / IMAGE_DIR)
    with pytest.raises(DatasetError, match="img_align_celeba does not exist"):
        CelebA.open(tree)


def _bad_tree(tree):
    (tree / IMAGE_DIR / "000002.jpg").write_bytes(b"")
    (tree / IMAGE_DIR / "000005.jpg").write_bytes(b"garbage")
    (tree / IMAGE_DIR / "000006.jpg").write_bytes(encoded("L", fmt="JPEG"))
    return CelebA.open(tree)


def test_load_many_error_policy_raises_on_the_first_bad_file(tree):
    celeba = _bad_tree(tree)
    ids = [r.image_id for r in celeba.records]
    with pytest.raises(BadImageError) as info:
        load_many(ids, lambda i, rep: celeba.load_image(i, 32, rep), on_bad="error", report=ImageReport())
    assert info.value.path == str(tree / IMAGE_DIR / "000002.jpg")


def test_load_many_skip_policy_records_every_skipped_file(tree):
    celeba = _bad_tree(tree)
    ids = [r.image_id for r in celeba.records]
    report = ImageReport()
    loaded = load_many(ids, lambda i, rep: celeba.load_image(i, 32, rep), on_bad="skip", report=report)
    assert [i for i, _ in loaded] == ["000001.jpg", "000003.jpg", "000004.jpg", "000006.jpg"]
    assert report.skipped == [
        (str(tree / IMAGE_DIR / "000002.jpg"), "file is empty"),
        (str(tree / IMAGE_DIR / "000005.jpg"), "not a recognisable image file"),
    ]
    assert report.converted == {"L->RGB": 1}
    assert report.as_dict()["skipped"] == 2  # nothing dropped without a record
    with pytest.raises(ValueError, match="on_bad"):
        load_many(ids, lambda i, rep: None, on_bad="ignore", report=report)
