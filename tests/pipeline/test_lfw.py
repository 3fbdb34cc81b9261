"""The LFW reader: pairs files parsed line by line, every problem with file and line, data check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from _trees import make_lfw_tree, pairs_text
from pipeline.datacheck import check_lfw, format_summary
from pipeline.errors import DatasetError
from pipeline.images import ImageReport
from pipeline.lfw import LFW, LFW_CROP_FRACTION, Pair, pair_path

PEOPLE = {"Ann_Lee": 3, "Bo_Chan": 2, "Cy_Dee": 1, "Di_Eve": 2}
# 2 folds x (2 matched + 2 mismatched)
FOLDS = [
    ([("Ann_Lee", 1, 2), ("Bo_Chan", 1, 2)], [("Ann_Lee", 3, "Cy_Dee", 1), ("Bo_Chan", 2, "Di_Eve", 1)]),
    ([("Ann_Lee", 1, 3), ("Di_Eve", 1, 2)], [("Cy_Dee", 1, "Di_Eve", 2), ("Ann_Lee", 2, "Bo_Chan", 1)]),
]


def problems_of(root):
    with pytest.raises(DatasetError) as info:
        LFW.open(root)
    return [str(p) for p in info.value.problems]


def test_pair_path():
    assert pair_path("Aaron_Eckhart", 1) == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    assert pair_path("X", 1234) == "X/X_1234.jpg"


def test_pairs_parsed_with_folds_and_line_numbers(tmp_path):
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(FOLDS))
    lfw = LFW.open(tmp_path)
    assert lfw.folds == 2 and len(lfw.pairs) == 8
    assert lfw.pairs[0] == Pair("Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0002.jpg", True, 0, 2)
    assert lfw.pairs[2] == Pair("Ann_Lee/Ann_Lee_0003.jpg", "Cy_Dee/Cy_Dee_0001.jpg", False, 0, 4)
    assert lfw.pairs[7] == Pair("Ann_Lee/Ann_Lee_0002.jpg", "Bo_Chan/Bo_Chan_0001.jpg", False, 1, 9)
    assert [p.same for p in lfw.pairs] == [True, True, False, False] * 2
    assert [p.fold for p in lfw.pairs] == [0] * 4 + [1] * 4
    assert lfw.people() == dict(sorted(PEOPLE.items()))
    assert lfw.image_path("Cy_Dee/Cy_Dee_0001.jpg") == tmp_path / "lfw" / "Cy_Dee" / "Cy_Dee_0001.jpg"


def test_any_whitespace_is_accepted(tmp_path):
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(FOLDS).replace("\t", "  "))
    assert len(LFW.open(tmp_path).pairs) == 8


def test_dev_files(tmp_path):
    dev = "1\nAnn_Lee\t1\t2\nBo_Chan\t1\tCy_Dee\t1\n"
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(FOLDS), dev={"pairsDevTrain.txt": dev, "pairsDevTest.txt": dev})
    lfw = LFW.open(tmp_path)
    assert [p.same for p in lfw.dev_train] == [True, False] and len(lfw.dev_test) == 2
    assert lfw.dev_train[1] == Pair("Bo_Chan/Bo_Chan_0001.jpg", "Cy_Dee/Cy_Dee_0001.jpg", False, 0, 3)


def test_malformed_pair_line_names_file_and_line(tmp_path):
    text = pairs_text(FOLDS).splitlines()
    text[2] = "Bo_Chan\t1"  # line 3: two fields
    text[6] = "Ann_Lee\tone\t3"  # line 7: not an integer
    make_lfw_tree(tmp_path, PEOPLE, pairs="\n".join(text) + "\n")
    assert problems_of(tmp_path) == [
        "pairs.txt:3: expected 3 fields (matched pair) or 4 (mismatched pair), found 2",
        "pairs.txt:7: image numbers must be integers, found 'one' and '3'",
    ]


def test_matched_line_where_a_mismatched_one_belongs(tmp_path):
    text = pairs_text(FOLDS).splitlines()
    text[4] = "Di_Eve\t1\t2"  # line 5 is fold 1's second mismatched slot
    make_lfw_tree(tmp_path, PEOPLE, pairs="\n".join(text) + "\n")
    assert problems_of(tmp_path) == [
        "pairs.txt:5: expected a mismatched pair (name1 n1 name2 n2) here by the header's counts, found a matched pair (name n1 n2)"
    ]


def test_pair_pointing_at_missing_image(tmp_path):
    folds = [list(f) for f in FOLDS]
    folds[1][0] = [("Ann_Lee", 1, 3), ("Di_Eve", 1, 9)]  # line 7
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(folds))
    assert problems_of(tmp_path) == ["pairs.txt:7: Di_Eve/Di_Eve_0009.jpg does not exist"]
    assert len(LFW.open(tmp_path, check_files=False).pairs) == 8


def test_header_count_mismatch(tmp_path):
    text = pairs_text(FOLDS).splitlines()
    make_lfw_tree(tmp_path, PEOPLE, pairs="\n".join(text[:-1]) + "\n")  # one line short
    assert problems_of(tmp_path) == [
        "pairs.txt:1: header says 2 folds x (2 matched + 2 mismatched) = 8 pair lines, file has 7"
    ]
    (tmp_path / "pairs.txt").write_text("ten\t2\n" + "\n".join(text[1:]) + "\n")
    assert problems_of(tmp_path)[0].startswith("pairs.txt:1: expected a header '<folds> <pairs per fold>'")


def test_missing_pairs_file_and_missing_or_empty_image_dir(tmp_path):
    make_lfw_tree(tmp_path / "a", PEOPLE)
    assert problems_of(tmp_path / "a")[0].startswith("pairs.txt: file does not exist")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pairs.txt").write_text(pairs_text(FOLDS))
    assert any("lfw/: directory" in m and "does not exist" in m for m in problems_of(tmp_path / "b"))
    (tmp_path / "b" / "lfw").mkdir()
    assert any("contains no images" in m for m in problems_of(tmp_path / "b"))


def test_load_image_crops_the_central_60_percent(tmp_path):
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(FOLDS))
    arr = np.zeros((250, 250, 3), dtype=np.uint8)
    arr[:, :, 0] = np.arange(250, dtype=np.uint8)[:, None]
    Image.fromarray(arr).save(tmp_path / "lfw" / "Cy_Dee" / "Cy_Dee_0001.jpg", format="PNG")
    out = LFW.open(tmp_path).load_image("Cy_Dee/Cy_Dee_0001.jpg", 150, ImageReport())
    assert LFW_CROP_FRACTION == 0.6 and out.shape == (150, 150, 3)
    assert list(out[:, 0, 0]) == list(range(50, 200))  # 150 px centred in 250


def test_check_lfw_summary(tmp_path):
    dev = "1\nAnn_Lee\t1\t2\nBo_Chan\t1\tCy_Dee\t1\n"
    make_lfw_tree(tmp_path, PEOPLE, pairs=pairs_text(FOLDS), dev={"pairsDevTrain.txt": dev})
    s = check_lfw(tmp_path)
    json.dumps(s)
    assert (s["people"], s["images"], s["folds"], s["pairs"]) == (4, 8, 2, 8)
    assert (s["matched"], s["mismatched"]) == (4, 4)
    assert s["pair_files"]["pairs.txt"] == {"pairs": 8, "matched": 4, "mismatched": 4, "folds": 2}
    assert s["pair_files"]["pairsDevTrain.txt"] == {"pairs": 2, "matched": 1, "mismatched": 1, "folds": 1}
    assert s["image_sizes"] == {"250x250": 8} and s["problems"] == []
    assert "no problems found" in format_summary(s)

    (tmp_path / "lfw" / "Bo_Chan" / "Bo_Chan_0002.jpg").write_bytes(b"")
    s = check_lfw(tmp_path, decode=True, workers=1)
    json.dumps(s)
    assert s["problems"] == [{"file": "lfw/Bo_Chan/Bo_Chan_0002.jpg", "line": None, "message": "file is empty"}]
    assert "1 problem:" in format_summary(s)


def test_check_lfw_missing_directory(tmp_path):
    s = check_lfw(tmp_path / "nope")
    json.dumps(s)
    assert s["images"] == 0 and "does not exist" in s["problems"][0]["message"]


# ---------------------------------------------------------------- lfw_attributes.txt (Kumar et al.)

def _attr_file(rows: list[str], columns=("Male", "Eyeglasses", "Smiling", "Mouth Slightly Open", "No Beard")) -> str:
    return "\n".join(["# LFW attribute values", "#\tperson\timagenum\t" + "\t".join(columns), *rows]) + "\n"


def test_lfw_attributes_well_formed(tmp_path):
    from pipeline.lfw_attributes import read_lfw_attributes

    path = tmp_path / "lfw_attributes.txt"
    path.write_text(_attr_file(["Aaron Eckhart\t1\t1.5\t-0.2\t0.7\t-1\t2", "Ana Maria Diaz\t12\t-1.1\t0.4\t-0.3\t0.1\t1e-3"]))
    attrs = read_lfw_attributes(path)
    assert attrs.images == ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Ana_Maria_Diaz/Ana_Maria_Diaz_0012.jpg")
    assert attrs.present("eyeglasses") == {attrs.images[0]: False, attrs.images[1]: True}
    assert attrs.present("Smiling") == {attrs.images[0]: True, attrs.images[1]: False}
    assert attrs.present("no_beard")[attrs.images[1]] is True  # 1e-3 > 0
    with pytest.raises(KeyError, match="Sunglasses"):
        attrs.present("Sunglasses")


@pytest.mark.parametrize("rows, line, message", [
    (["Aaron Eckhart\t1\t1.5\t-0.2\t0.7\t-1"], 3, "expected 7 tab-separated fields"),
    (["Aaron Eckhart\tone\t1.5\t-0.2\t0.7\t-1\t2"], 3, "imagenum must be a positive integer"),
    (["Aaron Eckhart\t0\t1.5\t-0.2\t0.7\t-1\t2"], 3, "imagenum must be a positive integer"),
    (["Aaron Eckhart\t1\t1.5\tyes\t0.7\t-1\t2"], 3, "scores must be numbers, found 'yes'"),
    (["Aaron Eckhart\t1\t1.5\tnan\t0.7\t-1\t2"], 3, "finite"),
    (["Aaron Eckhart\t1\t1\t1\t1\t1\t1", "Aaron Eckhart\t1\t1\t1\t1\t1\t1"], 4, "duplicate row"),
    (["\t1\t1\t1\t1\t1\t1"], 3, "empty person name"),
])
def test_lfw_attributes_malformed_rows_are_named_by_line(tmp_path, rows, line, message):
    from pipeline.errors import DatasetError
    from pipeline.lfw_attributes import read_lfw_attributes

    path = tmp_path / "lfw_attributes.txt"
    path.write_text(_attr_file(["Good Person\t1\t1\t1\t1\t1\t1", *rows]))
    with pytest.raises(DatasetError) as info:
        read_lfw_attributes(path)
    problem = info.value.problems[0]
    assert problem.file == "lfw_attributes.txt" and problem.line == line + 1 and message in problem.message


def test_lfw_attributes_header_problems(tmp_path):
    from pipeline.errors import DatasetError
    from pipeline.lfw_attributes import read_lfw_attributes

    cases = {
        "no header": "Aaron Eckhart\t1\t1\n",
        "bad header": "#\tname\tnumber\tMale\nAaron Eckhart\t1\t1\n",
        "doubled column": "#\tperson\timagenum\tMale\tMale\nAaron Eckhart\t1\t1\t1\n",
        "only comments": "# nothing\n",
    }
    for what, text in cases.items():
        path = tmp_path / f"{what}.txt"
        path.write_text(text)
        with pytest.raises(DatasetError, match=path.name):
            read_lfw_attributes(path)
    path = tmp_path / "binary.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_lfw_attributes(path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_lfw_attributes(tmp_path / "missing.txt")


def test_synthetic_lfw_tree_has_an_attribute_file_the_reader_accepts(tmp_path):
    from pipeline.lfw_attributes import LFW_ATTRIBUTE_NAMES, read_lfw_attributes
    from pipeline.synth import render_benchmark

    render_benchmark(tmp_path, identities=6, images_per_identity=2, size=16, seed=1, lfw_identities=20, workers=1,
                     progress=lambda d, t: None)
    attrs = read_lfw_attributes(tmp_path / "lfw" / "lfw_attributes.txt")
    assert attrs.columns == LFW_ATTRIBUTE_NAMES and len(LFW_ATTRIBUTE_NAMES) == 73
    on_disk = {f"{p.parent.name}/{p.name}" for p in (tmp_path / "lfw" / "lfw").glob("*/*.jpg")}
    assert set(attrs.images) == on_disk
