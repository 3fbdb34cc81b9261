"""The CelebA reader: parsing by name, every validation with file and line, splits, data check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from _trees import default_attributes, edit_line, make_celeba_tree
from pipeline.attributes import CELEBA_ATTRIBUTES, index_of
from pipeline.celeba import (
    ATTR_FILE, IDENTITY_FILE, IMAGE_DIR, PARTITION_FILE, CelebA, CelebARecord, Split,
    attribute_prevalence, official_split, paper_split,
)
from pipeline.datacheck import check_celeba, format_summary
from pipeline.errors import DatasetError, Problem
from pipeline.images import ImageReport, center_square_crop

IDS = {1: 3, 2: 5, 3: 2, 4: 3, 5: 1, 6: 2}  # 16 images


def problems_of(root) -> list[Problem]:
    with pytest.raises(DatasetError) as info:
        CelebA.open(root)
    assert info.value.problems
    return info.value.problems


# ----------------------------------------------------------------------------- happy path
@pytest.mark.parametrize("separator", ["one", "two"])
def test_happy_path_records_match_what_was_written(tmp_path, separator):
    written = make_celeba_tree(tmp_path, IDS, separator=separator)
    celeba = CelebA.open(tmp_path)
    assert celeba.records == written
    assert celeba.attribute_names == CELEBA_ATTRIBUTES
    assert len(celeba) == 16
    assert {i: len(v) for i, v in celeba.identities().items()} == IDS
    assert celeba.image_path("000001.jpg") == tmp_path / IMAGE_DIR / "000001.jpg"
    # -1/1 became 0/1
    assert set(v for r in celeba.records for v in r.attributes) == {0, 1}


def test_official_file_spacing_is_two_spaces_before_1(tmp_path):
    make_celeba_tree(tmp_path, {1: 1}, separator="two")
    row = (tmp_path / ATTR_FILE).read_text().splitlines()[2]
    assert "  1" in row and " -1" in row  # the official layout, which the reader accepts
    assert CelebA.open(tmp_path).records[0].attributes == default_attributes(1)


def test_attributes_are_located_by_name_not_position(tmp_path):
    order = list(reversed(CELEBA_ATTRIBUTES))
    written = make_celeba_tree(tmp_path, IDS, column_order=order)
    celeba = CelebA.open(tmp_path)
    assert celeba.records == written
    assert celeba.attribute_names == tuple(order)
    # one hand-checked value: image 1 has attribute k on iff (1 + k) % 3 == 0
    eyeglasses = index_of("eyeglasses")  # 15 -> (1 + 15) % 3 != 0 -> 0
    assert celeba.records[0].attributes[eyeglasses] == 0
    assert celeba.records[0].attributes[index_of("Attractive")] == 1  # k = 2: (1 + 2) % 3 == 0
    # the column of Attractive in the reversed file is 37: the raw row has 1 there
    row = (tmp_path / ATTR_FILE).read_text().splitlines()[2].split()
    assert row[1 + order.index("Attractive")] == "1" and row[1 + order.index("Eyeglasses")] == "-1"

def test_minus_one_maps_to_zero_and_one_to_one(tmp_path):
    make_celeba_tree(tmp_path, {1: 1})
    values = [-1, 1] * 20
    edit_line(tmp_path / ATTR_FILE, 3, "000001.jpg " + "  ".join(str(v) for v in values))
    assert CelebA.open(tmp_path).records[0].attributes == tuple([0, 1] * 20)


@pytest.mark.parametrize("header", [False, True])
def test_identity_file_with_or_without_header(tmp_path, header):
    written = make_celeba_tree(tmp_path, IDS, header_in_identity=header)
    assert CelebA.open(tmp_path).records == written


def test_identity_file_with_a_count_line(tmp_path):
    written = make_celeba_tree(tmp_path, IDS)
    path = tmp_path / IDENTITY_FILE
    path.write_text("16\n" + path.read_text())
    assert CelebA.open(tmp_path).records == written
    path.write_text("17\n" + path.read_text().split("\n", 1)[1])
    problems = problems_of(tmp_path)
    assert [str(p) for p in problems] == [f"{IDENTITY_FILE}:1: header says 17 images, file has 16 rows (truncated?)"]


def test_blank_trailing_lines_are_fine(tmp_path):
    written = make_celeba_tree(tmp_path, IDS)
    for name in (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE):
        (tmp_path / name).write_text((tmp_path / name).read_text() + "\n\n  \n")
    assert CelebA.open(tmp_path).records == written


def test_celeba_crop_is_rows_20_to_197(tmp_path):
    arr = np.zeros((218, 178, 3), dtype=np.uint8)
    arr[:, :, 0] = np.arange(218, dtype=np.uint8)[:, None]
    crop = center_square_crop(arr)
    assert crop.shape == (178, 178, 3)
    assert crop[0, 0, 0] == 20 and crop[-1, 0, 0] == 197
    # end to end through the reader, losslessly (PNG bytes under a .jpg name decode by content)
    make_celeba_tree(tmp_path, {1: 1})
    Image.fromarray(arr).save(tmp_path / IMAGE_DIR / "000001.jpg", format="PNG")
    out = CelebA.open(tmp_path).load_image("000001.jpg", 178, ImageReport())
    assert out.shape == (178, 178, 3) and out.dtype == np.uint8
    assert list(out[:, 0, 0]) == list(range(20, 198))
    assert CelebA.open(tmp_path).load_image("000001.jpg", 64).shape == (64, 64, 3)


# ----------------------------------------------------------------------------- validation
def test_truncated_attribute_file_names_file_and_line(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    lines = (tmp_path / ATTR_FILE).read_text().splitlines()
    (tmp_path / ATTR_FILE).write_text("\n".join(lines[:12]) + "\n")  # 10 of 16 rows
    messages = [str(p) for p in problems_of(tmp_path)]
    assert f"{ATTR_FILE}:1: header says 16 images, file has 10 rows (truncated?)" in messages
    # and the other two files list six images the attribute file does not
    assert any(m.startswith(f"{IDENTITY_FILE}:11: 6 images listed here are not in {ATTR_FILE}") for m in messages)


def test_row_with_39_values_names_the_line(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    row = (tmp_path / ATTR_FILE).read_text().splitlines()[6]  # line 7 = image 5
    edit_line(tmp_path / ATTR_FILE, 7, row.rsplit(" ", 1)[0])
    messages = [str(p) for p in problems_of(tmp_path)]
    assert messages == [f"{ATTR_FILE}:7: expected 40 attribute values, found 39"]


def test_value_2_is_rejected_with_the_attribute_named(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    values = ["1"] * 40
    values[CELEBA_ATTRIBUTES.index("Smiling")] = "2"
    edit_line(tmp_path / ATTR_FILE, 4, "000002.jpg " + " ".join(values))
    (p,) = problems_of(tmp_path)
    assert (p.file, p.line) == (ATTR_FILE, 4)
    assert "must be -1 or 1" in p.message and "Smiling='2'" in p.message


def test_scan_collects_all_problems_and_keeps_good_records(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    edit_line(tmp_path / ATTR_FILE, 4, "000002.jpg " + " ".join(["0"] * 40))
    edit_line(tmp_path / PARTITION_FILE, 3, "000003.jpg 7")
    celeba, problems = CelebA.scan(tmp_path)
    assert {(p.file, p.line) for p in problems} == {(ATTR_FILE, 4), (PARTITION_FILE, 3)}
    assert "partition must be 0, 1 or 2" in next(p.message for p in problems if p.file == PARTITION_FILE)
    assert [r.image_id for r in celeba.records] == [f"{i:06d}.jpg" for i in range(1, 17) if i not in (2, 3)]


def test_image_in_attr_file_but_not_identity_file(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    edit_line(tmp_path / IDENTITY_FILE, 5, None)  # drops 000005.jpg
    messages = [str(p) for p in problems_of(tmp_path)]
    assert f"{ATTR_FILE}:7: 1 images listed here are not in {IDENTITY_FILE}: 000005.jpg (line 7)" in messages
    assert f"{PARTITION_FILE}:5: 1 images listed here are not in {IDENTITY_FILE}: 000005.jpg (line 5)" in messages
    assert len(messages) == 2


def test_missing_image_file_is_reported_with_count(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    (tmp_path / IMAGE_DIR / "000004.jpg").unlink()
    (tmp_path / IMAGE_DIR / "000009.jpg").unlink()
    (p,) = problems_of(tmp_path)
    assert p.file == f"{IMAGE_DIR}/"
    assert p.message == f"2 listed images are missing from {IMAGE_DIR}/: 000004.jpg, 000009.jpg"
    assert len(CelebA.open(tmp_path, check_files=False).records) == 16


def test_duplicate_image_line(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    lines = (tmp_path / ATTR_FILE).read_text().splitlines()
    lines[0] = "17"
    lines.insert(8, lines[4])  # 000003.jpg again, as line 9
    (tmp_path / ATTR_FILE).write_text("\n".join(lines) + "\n")
    messages = [str(p) for p in problems_of(tmp_path)]
    assert messages == [f"{ATTR_FILE}:9: duplicate image 000003.jpg (first listed on line 5)"]


def test_wrong_attribute_names_are_reported(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    names = list(CELEBA_ATTRIBUTES)
    names[31] = "Smiles"
    edit_line(tmp_path / ATTR_FILE, 2, " ".join(names))
    (p,) = problems_of(tmp_path)
    assert (p.file, p.line) == (ATTR_FILE, 2)
    assert "unknown Smiles" in p.message and "missing Smiling" in p.message


def test_malformed_identity_line(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    edit_line(tmp_path / IDENTITY_FILE, 6, "000006.jpg")
    edit_line(tmp_path / IDENTITY_FILE, 7, "000007.jpg seven")
    messages = [str(p) for p in problems_of(tmp_path)]
    assert f"{IDENTITY_FILE}:6: expected '<image>.jpg <identity>', found '000006.jpg'" in messages
    assert f"{IDENTITY_FILE}:7: identity must be an integer, found 'seven'" in messages


def test_missing_annotation_file_and_missing_root(tmp_path):
    make_celeba_tree(tmp_path / "c", IDS)
    (tmp_path / "c" / PARTITION_FILE).unlink()
    messages = [str(p) for p in problems_of(tmp_path / "c")]
    assert any(m.startswith(f"{PARTITION_FILE}: file does not exist") for m in messages)
    (p,) = problems_of(tmp_path / "nowhere")
    assert "does not exist" in p.message


def test_dataset_error_lists_first_20_and_counts_the_rest():
    err = DatasetError([Problem("f.txt", i, "bad") for i in range(1, 26)], "CelebA tree x")
    text = str(err)
    assert "25 problems" in text and "f.txt:20: bad" in text and "f.txt:21" not in text
    assert text.endswith("... and 5 more")


# ----------------------------------------------------------------------------- splits
def test_paper_split_hand_computed_with_ties(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    celeba = CelebA.open(tmp_path)
    # by count desc, ties by identity asc: 2(5) 1(3) 4(3) 3(2) 6(2) 5(1)
    s = paper_split(celeba, test_identities=3)
    assert s.train_identities == {2, 1, 4} and s.test_identities == {3, 6, 5}
    assert (len(s.train), len(s.test)) == (11, 5)
    s = paper_split(celeba, test_identities=4)  # boundary inside the tie 1(3)/4(3): 1 trains
    assert s.train_identities == {2, 1} and s.test_identities == {4, 3, 6, 5}
    assert (len(s.train), len(s.test)) == (8, 8)
    assert s.train == tuple(sorted(s.train)) and not set(s.train) & set(s.test)
    s.check_disjoint()
    with pytest.raises(DatasetError, match="test_identities"):
        paper_split(celeba, test_identities=6)


def test_split_overlap_is_an_error():
    s = Split(name="x", train=("a.jpg",), test=("b.jpg",), train_identities=frozenset({1, 2}), test_identities=frozenset({2}))
    with pytest.raises(DatasetError, match="1 identities are in both train and test: 2"):
        s.check_disjoint()


def test_official_split_and_its_overlap_error(tmp_path):
    make_celeba_tree(tmp_path / "ok", IDS, partitions={1: 0, 2: 0, 3: 0, 4: 1, 5: 2, 6: 2})
    s = official_split(CelebA.open(tmp_path / "ok"))
    assert (len(s.train), len(s.valid), len(s.test)) == (10, 3, 3)
    assert s.valid_identities == {4} and s.test_identities == {5, 6}
    s.check_disjoint()

    make_celeba_tree(tmp_path / "bad", IDS)
    edit_line(tmp_path / "bad" / PARTITION_FILE, 4, "000004.jpg 2")  # identity 2's first image in test
    with pytest.raises(DatasetError, match=r"1 identities appear in more than one partition: 2 \(train/test\)"):
        official_split(CelebA.open(tmp_path / "bad"))


def test_attribute_prevalence():
    recs = [CelebARecord("a", 1, 0, tuple([1] * 40)), CelebARecord("b", 1, 0, tuple([0] * 39 + [1]))]
    prev = attribute_prevalence(recs)
    assert list(prev) == list(CELEBA_ATTRIBUTES)
    assert prev["Male"] == 0.5 and prev["Young"] == 1.0


# ----------------------------------------------------------------------------- data check
def test_check_celeba_summary(tmp_path):
    make_celeba_tree(tmp_path, IDS, partitions={1: 0, 2: 0, 3: 0, 4: 1, 5: 2, 6: 2})
    s = check_celeba(tmp_path, test_identities=3)
    json.dumps(s)
    assert s["images"] == 16 and s["identities"] == 6 and s["problems"] == []
    assert s["images_per_identity"] == {"min": 1, "median": 2.5, "max": 5}
    assert s["splits"]["paper"]["train"] == {"images": 11, "identities": 3}
    assert s["splits"]["paper"]["test"] == {"images": 5, "identities": 3}
    assert s["splits"]["official"]["valid"] == {"images": 3, "identities": 1}
    assert s["image_sizes"] == {"178x218": 16}
    assert len(s["attribute_prevalence"]) == 40
    text = format_summary(s)
    assert "no problems found" in text and "178x218" in text


def test_check_celeba_decode_finds_corrupt_image(tmp_path):
    make_celeba_tree(tmp_path, IDS)
    (tmp_path / IMAGE_DIR / "000003.jpg").write_bytes(b"not a jpeg at all")
    Image.new("L", (178, 218), 128).save(tmp_path / IMAGE_DIR / "000004.jpg", format="JPEG")
    s = check_celeba(tmp_path, decode=True, workers=2, test_identities=2)
    json.dumps(s)
    assert s["problems"] == [{"file": f"{IMAGE_DIR}/000003.jpg", "line": None, "message": "not a recognisable image file"}]
    assert s["image_report"]["converted"] == {"L->RGB": 1}
    assert s["image_sizes"] == {"178x218": 15}
    assert "000003.jpg: not a recognisable image file" in format_summary(s)


def test_check_celeba_missing_and_empty_directory(tmp_path):
    s = check_celeba(tmp_path / "nope")
    assert s["images"] == 0 and "does not exist" in s["problems"][0]["message"]
    make_celeba_tree(tmp_path / "empty", IDS)
    for f in (tmp_path / "empty" / IMAGE_DIR).iterdir():
        f.unlink()
    s = check_celeba(tmp_path / "empty")
    assert any("contains no images" in p["message"] for p in s["problems"])
    json.dumps(s)
