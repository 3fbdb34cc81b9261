"""Property tests of every reader of outside input: arbitrary bytes, and mutations of valid files, end in a
correct parse or in the project's own error naming the file (or key), never in another exception or a hang.

Readers: the three CelebA annotation files (CelebA.scan/open), LFW pairs files (LFW.scan/open), Kumar et
al.'s LFW attribute file (parse_lfw_attributes/read_lfw_attributes), config overrides and saved configs
(parse_overrides, load_config, read_config), shard manifest entries and manifest.json (ShardStore.verify,
entries, has). Each property is bounded (a few dozen examples, no deadline) to keep the suite fast.
"""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _stores import make_originals_store
from _trees import make_celeba_tree, make_lfw_tree, pairs_text
from pipeline.celeba import ATTR_FILE, IDENTITY_FILE, IMAGE_DIR, PARTITION_FILE, CelebA, official_split, paper_split
from pipeline.config import ConfigError, RunConfig, load_config, parse_overrides, read_config
from pipeline.errors import DatasetError
from pipeline.lfw import DEV_FILES, PAIRS_FILE, LFW
from pipeline.lfw_attributes import LFWAttributes, parse_lfw_attributes, read_lfw_attributes
from pipeline.shards import ShardError, ShardStore

PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def mutation_of(draw, original: bytes) -> bytes:
    """`original` with a few edits a disk, a tool or a person could make: flipped or deleted bytes,
    inserted junk, a cut, a line dropped, doubled or replaced."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        lines = bytes(data).split(b"\n")
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "drop line", "double line", "replace line"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        line = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12)
                               | st.sampled_from([b" ", b"\t", b"-1", b"\n", b"\r\n", b"\xff", "\u00b2".encode(), b"\x00"]))
        elif op == "truncate":
            del data[at:]
        elif op in ("drop line", "double line", "replace line") and lines:
            if op == "drop line":
                del lines[line]
            elif op == "double line":
                lines.insert(line, lines[line])
            else:
                lines[line] = draw(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def outside_input(original: bytes):
    return st.one_of(mutation_of(original), st.binary(max_size=400), st.text(max_size=200).map(str.encode))


# ----------------------------------------------------------------------------- CelebA annotation files
CELEBA_FILES = (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE)


@pytest.fixture(scope="module")
def celeba_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    records = make_celeba_tree(root, {1: 3, 2: 2, 3: 3}, size=(16, 16), partitions={1: 0, 2: 1, 3: 2})
    return root, {f: (root / f).read_bytes() for f in CELEBA_FILES}, records


@PROPERTY
@given(data=st.data())
def test_celeba_files_parse_or_name_the_file(celeba_tree, data):
    root, originals, records = celeba_tree
    changed = data.draw(st.sets(st.sampled_from(CELEBA_FILES), min_size=1))
    for name in CELEBA_FILES:
        (root / name).write_bytes(data.draw(outside_input(originals[name])) if name in changed else originals[name])
    celeba, problems = CelebA.scan(root)
    known = {*CELEBA_FILES, f"{IMAGE_DIR}/"}
    assert all(p.file in known for p in problems), problems
    try:
        opened = CelebA.open(root)
    except DatasetError as exc:
        assert exc.problems and all(p.file in known for p in exc.problems)
        assert any(name in str(exc) for name in known)
        return
    assert not problems and celeba is not None
    for r in opened.records:  # a clean parse is a correct one
        assert len(r.attributes) == 40 and set(r.attributes) <= {0, 1} and r.partition in (0, 1, 2) and r.identity >= 0
    for split in (lambda c: paper_split(c, test_identities=1), official_split):
        try:
            split(opened).check_disjoint()
        except DatasetError as exc:
            assert exc.problems


@pytest.mark.parametrize("first_line", ["\u00b2", "\u0663", "12", "image_id identity"])
def test_celeba_count_or_header_line_found_by_the_properties(tmp_path, first_line):
    """int() refuses "²" though str.isdigit() accepts it: once a raw ValueError out of the scan."""
    make_celeba_tree(tmp_path, {1: 2, 2: 2}, size=(16, 16))
    lines = (tmp_path / IDENTITY_FILE).read_text().splitlines()
    (tmp_path / IDENTITY_FILE).write_text("\n".join([first_line, *lines]) + "\n")
    celeba, problems = CelebA.scan(tmp_path)
    assert celeba is not None and all(p.file == IDENTITY_FILE for p in problems)


def test_nul_byte_in_an_image_name_is_a_bad_image():
    from pipeline.images import BadImageError, load_rgb

    with pytest.raises(BadImageError, match="NUL byte"):
        load_rgb("/tmp/000001\x00.jpg")


def test_celeba_unchanged_files_parse_exactly(celeba_tree):
    root, originals, records = celeba_tree
    for name, content in originals.items():
        (root / name).write_bytes(content)
    assert CelebA.open(root).records == records


# ----------------------------------------------------------------------------- LFW pairs files
@pytest.fixture(scope="module")
def lfw_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfw")
    people = {"Ann_A": 3, "Bob_B": 2, "Cy_C": 2}
    pairs = pairs_text([([("Ann_A", 1, 2)], [("Ann_A", 3, "Bob_B", 1)]), ([("Bob_B", 1, 2)], [("Cy_C", 1, "Ann_A", 2)])])
    dev = "1\nCy_C\t1\t2\nBob_B\t2\tCy_C\t2\n"
    make_lfw_tree(root, people, size=(16, 16), pairs=pairs, dev={DEV_FILES[0]: dev})
    return root, {PAIRS_FILE: pairs.encode(), DEV_FILES[0]: dev.encode()}


@PROPERTY
@given(data=st.data())
def test_lfw_pairs_parse_or_name_the_file(lfw_tree, data):
    root, originals = lfw_tree
    for name, content in originals.items():
        (root / name).write_bytes(data.draw(outside_input(content)) if data.draw(st.booleans()) else content)
    lfw, problems = LFW.scan(root)
    assert all(p.file in (*originals, "lfw/") for p in problems), problems
    try:
        opened = LFW.open(root)
    except DatasetError as exc:
        assert exc.problems and any(name in str(exc) for name in originals)
        return
    files = set(opened.images())
    for pair in opened.pairs + opened.dev_train:
        assert pair.left in files and pair.right in files and (pair.left != pair.right) and 0 <= pair.fold < opened.folds


# ----------------------------------------------------------------------------- LFW attribute file
VALID_ATTRIBUTES = ("# Kumar et al.\n#\tperson\timagenum\tMale\tSmiling\tEyeglasses\n"
                    "Ann A\t1\t1.5\t-0.25\t0.0\nBob B\t2\t-1e-3\t2\t3.25\n")


@PROPERTY
@given(text=st.one_of(mutation_of(VALID_ATTRIBUTES.encode()).map(lambda b: b.decode("utf-8", "replace")), st.text(max_size=300)))
def test_lfw_attribute_text_parses_or_lists_problems(text):
    attrs, problems = parse_lfw_attributes(text, "lfw_attributes.txt")
    assert all(p.file == "lfw_attributes.txt" for p in problems)
    if attrs is not None:
        assert attrs.scores.shape == (len(attrs.images), len(attrs.columns)) and len(set(attrs.images)) == len(attrs.images)
        assert bool(abs(attrs.scores).max(initial=0) < float("inf"))


def test_lfw_attribute_score_beyond_float32_is_a_problem():
    attrs, problems = parse_lfw_attributes("#\tperson\timagenum\tMale\nAnn A\t1\t1e300\n")
    assert attrs is not None and attrs.images == () and problems[0].line == 2 and "within" in problems[0].message


@PROPERTY
@given(content=outside_input(VALID_ATTRIBUTES.encode()))
def test_lfw_attribute_file_reads_or_names_it(tmp_path, content):
    path = tmp_path / "lfw_attributes.txt"
    path.write_bytes(content)
    try:
        attrs = read_lfw_attributes(path)
    except DatasetError as exc:
        assert "lfw_attributes.txt" in str(exc)
        return
    assert isinstance(attrs, LFWAttributes)


# ----------------------------------------------------------------------------- config overrides
KEYS = ["seed", "output_dir", "workers", "data.image_size", "data.split", "data.on_bad_image", "data.celeba_dir",
        "data.synthetic.style.glasses", "editor.attributes", "editor.betas", "editor.params", "verifier.lr",
        "verifier.seeds", "verifier.arms", "evaluation.far_levels", "data", "editor"]
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "1", "-1", "0.5", ".inf", ".nan", "true", "null", "~", "[]", "[0, 0]", "[1", "{a: 1}", "{1: 2}",
                     "!!python/object/apply:os.system [ls]", "!!binary aGk=", "&a [*a]", "2001-02-30", "1e999",
                     "[smiling, no_beard]", "{image_size: 48}", "'quoted'", "? [a]\n: 1", "- - - -"]),
)


@PROPERTY
@given(overrides=st.lists(st.one_of(st.tuples(st.sampled_from(KEYS) | st.text(max_size=12), VALUES).map("=".join),
                                    st.text(max_size=30)), max_size=4))
def test_overrides_load_or_name_the_key(overrides):
    try:
        cfg = load_config("tiny", overrides)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, RunConfig)
    assert RunConfig.model_validate_json(cfg.to_json()) == cfg  # what loads also saves and loads back


def test_override_parsing_is_plain_yaml():
    assert parse_overrides(["a.b=[1, 2]", "c={d: x}"]) == {"a": {"b": [1, 2]}, "c": {"d": "x"}}


@PROPERTY
@given(content=st.one_of(outside_input(load_config("tiny").to_json().encode()), st.binary(max_size=200)))
def test_saved_config_reads_or_names_the_file(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    try:
        assert isinstance(read_config(path), RunConfig)
    except ConfigError as exc:
        assert str(path) in str(exc)


# ----------------------------------------------------------------------------- shard manifests
@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards") / "ds"
    store = make_originals_store(root)
    pristine = root.parent / "pristine"
    shutil.copytree(root, pristine)
    return root, pristine, json.loads((root / "_manifest" / "part-00000.json").read_text()), store.write_summary()


def _restore(root, pristine) -> None:
    shutil.rmtree(root)
    shutil.copytree(pristine, root)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)


@st.composite
def entry_mutations(draw, entry: dict) -> bytes:
    if draw(st.booleans()):
        return draw(outside_input(json.dumps(entry, indent=1, sort_keys=True).encode()))
    changed = dict(entry)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(entry)))
        if draw(st.booleans()):
            changed.pop(key, None)
        else:
            changed[key] = draw(JSON_VALUES | st.sampled_from([entry[key], -1, 0, 10**30, "../x.parquet", "part-00001.parquet"]))
    return json.dumps(changed).encode()


@PROPERTY
@given(data=st.data())
def test_manifest_entries_verify_or_report_the_file(store_dir, data):
    root, pristine, entry, _ = store_dir
    _restore(root, pristine)
    content = data.draw(entry_mutations(entry))
    (root / "_manifest" / "part-00000.json").write_bytes(content)
    store = ShardStore(str(root))
    report = store.verify()
    assert isinstance(store.has("part-00000", progress=lambda m: None), bool) and store.has("part-00001")
    try:
        entries = store.entries()
    except ShardError as exc:
        assert "part-00000" in str(exc)
        assert not report.ok and any("part-00000" in p for p in report.problems)
        return
    names = [e.name for e in entries]
    if report.ok:  # whatever still verifies reads back in full
        assert names == ["part-00000", "part-00001"] and store.read_table().num_rows == 24
    else:
        assert all(("part-00000" in p) for p in report.problems), report.problems


@PROPERTY
@given(data=st.data())
def test_manifest_summary_verifies_or_is_reported(store_dir, data):
    root, pristine, _, summary = store_dir
    _restore(root, pristine)
    original = json.dumps(summary, indent=1, sort_keys=True).encode()
    content = data.draw(outside_input(original))
    (root / "manifest.json").write_bytes(content)
    report = ShardStore(str(root)).verify()
    try:
        written = json.loads(content)
    except (ValueError, RecursionError):
        written = None
    # the same summary, but for "dataset", of which only the key must agree (see pipeline.shard_verify._check_summary)
    same = (isinstance(written, dict) and isinstance(written.get("dataset"), dict)
            and written["dataset"].get("key") == summary["dataset"].get("key")
            and {k: v for k, v in written.items() if k != "dataset"} == {k: v for k, v in summary.items() if k != "dataset"})
    assert report.ok == same, report.problems
    assert all(p.startswith(f"{root}/manifest.json: ") for p in report.problems)
