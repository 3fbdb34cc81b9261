"""The synthetic benchmark: statistics (sampler only), file formats, determinism, regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.synth import (
    REGION_BITS, identity_level_fractions, images_per_identity, load_regions, load_stats, render_benchmark,
    render_face, sample_labels, sample_params, sample_person,
)

IDX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
EDITED = ("Eyeglasses", "Mouth_Slightly_Open", "Smiling", "No_Beard")


# ---------------------------------------------------------------- (a) statistics, no rendering

@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(0)
    people = [sample_person(rng, i + 1) for i in range(2000)]
    labels = [sample_labels(rng, p, 20) for p in people]
    return people, labels


def test_prevalences_match_reference(population):
    _, labels = population
    allrows = np.concatenate(labels)
    stats = load_stats()["attributes"]
    for name in EDITED + ("Male",):
        got = allrows[:, IDX[name]].mean()
        assert abs(got - stats[name]["prevalence"]) < 0.03, (name, got)


def test_conditionals_match_reference(population):
    _, labels = population
    rows = np.concatenate(labels)
    cond = load_stats()["conditional"]
    male = rows[:, IDX["Male"]] == 1
    beard = rows[:, IDX["No_Beard"]] == 0
    assert beard[~male].mean() < 0.01  # reference 0.0011
    assert abs(beard[male].mean() - cond["P(beard | male)"]) < 0.04
    smile = rows[:, IDX["Smiling"]] == 1
    mouth = rows[:, IDX["Mouth_Slightly_Open"]] == 1
    assert abs(mouth[smile].mean() - cond["P(mouth_open | smiling)"]) < 0.04
    assert abs(mouth[~smile].mean() - cond["P(mouth_open | not smiling)"]) < 0.04
    glasses = rows[:, IDX["Eyeglasses"]] == 1
    assert glasses[male].mean() > 2 * glasses[~male].mean()  # corr +0.19 -> ~0.12 vs ~0.02
    assert smile[male].mean() < smile[~male].mean() - 0.07  # corr -0.135 -> ~0.40 vs ~0.54
    # beard styles label Goatee / Mustache consistently: never without a beard
    assert not (rows[:, IDX["Goatee"]] & ~beard).any()
    assert not (rows[:, IDX["Mustache"]] & ~beard).any()


def test_identity_level_mixing_roughly_like_reference(population):
    # The reference's always/never/mixed fractions come from identities with ~9 observed
    # images (20,000 rows), so compare on 9 images per identity, loosely.
    people, labels = population
    frac = identity_level_fractions([lab[:9] for lab in labels])
    stats = load_stats()["attributes"]
    for name in ("Eyeglasses", "Mouth_Slightly_Open", "Smiling", "No_Beard"):
        for part in ("always", "never", "mixed"):
            ref = stats[name][f"identities_{part}"]
            assert abs(frac[name][part] - ref) < 0.12, (name, part, frac[name][part], ref)
    assert frac["Male"]["mixed"] == 0.0  # identity-constant by design


def test_male_is_identity_constant(population):
    _, labels = population
    for lab in labels:
        assert lab[:, IDX["Male"]].min() == lab[:, IDX["Male"]].max()


def test_images_per_identity_shape():
    counts = images_per_identity(np.random.default_rng(1), 20000, 21)
    q = np.percentile(counts, [10, 50, 90])
    assert counts.min() >= 1 and counts.max() <= 36
    assert abs(q[0] - 5) <= 1.5 and abs(q[1] - 21) <= 1.5 and abs(q[2] - 30) <= 1.5
    assert (images_per_identity(np.random.default_rng(1), 50, 7, fixed=True) == 7).all()


# ---------------------------------------------------------------- (b, c) formats and determinism

def _render(out: Path, workers: int, **kw) -> dict:
    return render_benchmark(out, identities=12, images_per_identity=3, size=32, seed=5, lfw_identities=20,
                            workers=workers, progress=lambda done, total: None, **kw)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    a = tmp_path_factory.mktemp("synth_a")
    b = tmp_path_factory.mktemp("synth_b")
    summary = _render(a, workers=2)
    _render(b, workers=1)
    return a, b, summary


def test_celeba_files_exact_format(trees):
    root = trees[0] / "celeba"
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    n = int(lines[0])
    assert lines[1].split(" ") == list(CELEBA_ATTRIBUTES)
    rows = lines[2:]
    assert len(rows) == n == trees[2]["celeba"]["images"]
    names = []
    for k, row in enumerate(rows, start=1):
        assert row[:10] == f"{k:06d}.jpg"
        values = row[10:]
        assert len(values) == 3 * 40 and all(values[3 * j] == " " for j in range(40))
        vals = [int(values[3 * j : 3 * j + 3]) for j in range(40)]
        assert set(vals) <= {-1, 1}
        names.append(row[:10])
    ident = [ln.split(" ") for ln in (root / "identity_CelebA.txt").read_text().splitlines()]
    part = [ln.split(" ") for ln in (root / "list_eval_partition.txt").read_text().splitlines()]
    assert [x[0] for x in ident] == names == [x[0] for x in part]
    ids = {name: int(i) for name, i in ident}
    assert min(ids.values()) == 1
    by_part: dict[str, set] = {}
    for name, p in part:
        assert p in ("0", "1", "2")
        by_part.setdefault(p, set()).add(ids[name])
    assert set(by_part) == {"0", "1", "2"}
    assert not (by_part["0"] & by_part["1"]) and not (by_part["0"] & by_part["2"]) and not (by_part["1"] & by_part["2"])
    # images exist, are size x size JPEGs; ids are shuffled, not grouped
    for name in names:
        with Image.open(root / "img_align_celeba" / name) as im:
            assert im.format == "JPEG" and im.size == (32, 32)
    seq = [ids[nm] for nm in names]
    assert seq != sorted(seq)
    assert (root / "attribute_regions" / "regions.json").exists()


def test_lfw_files_exact_format(trees):
    root = trees[0] / "lfw"
    lines = (root / "pairs.txt").read_text().splitlines()
    folds, p = lines[0].split("\t")
    folds, p = int(folds), int(p)
    assert folds == 10 and p >= 1
    body = lines[1:]
    assert len(body) == 10 * 2 * p

    def exists(name, n):
        path = root / "lfw" / name / f"{name}_{int(n):04d}.jpg"
        return path.exists()

    seen = set()
    for f in range(10):
        block = body[f * 2 * p : (f + 1) * 2 * p]
        for ln in block[:p]:
            name, n1, n2 = ln.split("\t")
            assert exists(name, n1) and exists(name, n2) and n1 != n2
        for ln in block[p:]:
            a, n1, b, n2 = ln.split("\t")
            assert a != b and exists(a, n1) and exists(b, n2)
        assert len(set(block)) == len(block)
        seen.update(block)
    assert len(seen) == len(body)
    for fname in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        dev = (root / fname).read_text().splitlines()
        n = int(dev[0])
        assert len(dev) == 1 + 2 * n and all(len(x.split("\t")) == 3 for x in dev[1 : 1 + n])
    one = next((root / "lfw").iterdir())
    with Image.open(next(one.iterdir())) as im:
        assert im.size == (round(32 / 0.6),) * 2
    # LFW people are not CelebA people: different trait draws
    import json
    traits = json.loads((trees[0] / "synth.json").read_text())["identity_traits"]
    celeba_faces = {(t["skin"][0], t["face_w"]) for t in traits["celeba"]}
    assert not celeba_faces & {(t["skin"][0], t["face_w"]) for t in traits["lfw"]}


def test_same_seed_is_byte_identical_for_any_worker_count(trees):
    a, b, _ = trees
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 50
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_refuses_non_empty_dir(trees, tmp_path):
    with pytest.raises(FileExistsError, match=str(trees[0])):
        _render(trees[0], workers=1)
    (tmp_path / "junk.txt").write_text("x")
    render_benchmark(tmp_path, identities=3, images_per_identity=1, size=24, lfw_identities=20, workers=1,
                     overwrite=True, progress=lambda d, t: None)
    assert (tmp_path / "celeba" / "list_attr_celeba.txt").exists()


def test_region_png_round_trip(trees):
    root = trees[0] / "celeba" / "attribute_regions"
    regions = load_regions(root / "000001.png")
    assert set(regions) == set(REGION_BITS)
    assert all(m.shape == (32, 32) and m.dtype == bool and m.any() for m in regions.values())


# ---------------------------------------------------------------- (d) regions cover the edits

def _cases():
    for k in range(8):
        domain = "lfw" if k % 4 == 3 else "celeba"
        yield k, domain, k % 3 == 2  # some blurry images


@pytest.mark.parametrize("attribute", EDITED)
def test_region_covers_every_changed_pixel(attribute):
    for k, domain, blurry in _cases():
        person = sample_person(np.random.default_rng([11, k]), k + 1)
        labels = sample_labels(np.random.default_rng([12, k]), person, 1)[0].copy()
        labels[IDX["Blurry"]] = int(blurry)
        params = sample_params(np.random.SeedSequence([13, k]), domain, blurry, 48)
        on, off = labels.copy(), labels.copy()
        # No_Beard's visible state is value 0 (a beard); the others are value 1
        on[IDX[attribute]] = 0 if attribute == "No_Beard" else 1
        off[IDX[attribute]] = 1 if attribute == "No_Beard" else 0
        img_on, regions = render_face(person.identity, on, params, 48)
        img_off, regions_off = render_face(person.identity, off, params, 48)
        changed = (img_on != img_off).any(axis=2)
        assert changed.sum() > 5, (attribute, k)  # the attribute is visible
        region = regions[attribute] | regions_off[attribute]
        assert not (changed & ~region).any(), (attribute, k, int((changed & ~region).sum()))
        assert regions[attribute].mean() < 0.5  # a region, not the whole image


def test_regions_non_empty_and_placed():
    for k, domain, blurry in _cases():
        person = sample_person(np.random.default_rng([21, k]), k + 1)
        labels = sample_labels(np.random.default_rng([22, k]), person, 1)[0]
        params = sample_params(np.random.SeedSequence([23, k]), domain, blurry, 48)
        _, regions = render_face(person.identity, labels, params, 48)
        for name in EDITED:
            assert regions[name].any(), name
        rows = np.arange(regions["Eyeglasses"].shape[0])[:, None]
        glasses_y = (rows * regions["Eyeglasses"]).sum() / regions["Eyeglasses"].sum()
        mouth_y = (rows * regions["Mouth_Slightly_Open"]).sum() / regions["Mouth_Slightly_Open"].sum()
        assert glasses_y < mouth_y - 5


# ---------------------------------------------------------------- (e) the benchmark's knobs, records, counterfactuals

STRONG = dict(glasses=2.5, beard=2.0, smile=2.0, mouth=1.8, nuisance=2.0, identity_spread=0.5)


@pytest.mark.parametrize("attribute", EDITED)
def test_region_covers_every_changed_pixel_with_strong_style(attribute):
    from pipeline.synth import Style

    style = Style(**STRONG)
    for k, domain, blurry in _cases():
        person = sample_person(np.random.default_rng([31, k]), k + 1, style.identity_spread)
        labels = sample_labels(np.random.default_rng([32, k]), person, 1)[0].copy()
        labels[IDX["Blurry"]] = int(blurry)
        params = sample_params(np.random.SeedSequence([33, k]), domain, blurry, 48, style.nuisance)
        on, off = labels.copy(), labels.copy()
        on[IDX[attribute]] = 0 if attribute == "No_Beard" else 1
        off[IDX[attribute]] = 1 if attribute == "No_Beard" else 0
        img_on, regions = render_face(person.identity, on, params, 48, style)
        img_off, regions_off = render_face(person.identity, off, params, 48, style)
        changed = (img_on != img_off).any(axis=2)
        region = regions[attribute] | regions_off[attribute]
        assert changed.sum() > 5 and not (changed & ~region).any(), (attribute, k)


def test_strong_style_changes_more_pixels_than_default():
    from pipeline.synth import Style

    person = sample_person(np.random.default_rng(5), 1)
    labels = sample_labels(np.random.default_rng(6), person, 1)[0].copy()
    params = sample_params(np.random.SeedSequence(7), "celeba", False, 64)
    for attribute, knob in (("Eyeglasses", "glasses"), ("Smiling", "smile"), ("Mouth_Slightly_Open", "mouth")):
        on, off = labels.copy(), labels.copy()
        on[IDX[attribute]], off[IDX[attribute]] = 1, 0
        diffs = []
        for strength in (1.0, 2.0):
            style = Style(**{knob: strength})
            a, _ = render_face(person.identity, on, params, 64, style)
            b, _ = render_face(person.identity, off, params, 64, style)
            diffs.append(np.abs(a.astype(int) - b.astype(int)).sum())
        assert diffs[1] > diffs[0], attribute


def test_render_records_remake_every_image_byte_exactly_and_counterfactuals_stay_in_the_region(tmp_path):
    from pipeline.synth import RenderRecords, Style

    render_benchmark(tmp_path, identities=8, images_per_identity=3, size=32, seed=3, lfw_identities=20, workers=1,
                     progress=lambda d, t: None, style=Style(glasses=2.0, nuisance=1.5))
    records = RenderRecords.read(tmp_path / "celeba")
    assert records.style == Style(glasses=2.0, nuisance=1.5) and len(records.images) > 10
    for image_id in sorted(records.images)[:10]:
        data, _ = records.render(image_id)
        assert data == (tmp_path / "celeba" / "img_align_celeba" / image_id).read_bytes(), image_id
        # the counterfactual: the same recipe with one label flipped; before JPEG it differs only inside the region
        from pipeline.synth import render_image

        labels = records.labels(image_id).astype(np.int8)
        identity, index, _ = records.record(image_id)
        flipped = labels.copy()
        flipped[IDX["Eyeglasses"]] = 1 - flipped[IDX["Eyeglasses"]]
        a, regions_a, _ = render_image(records.identities[identity], labels, "celeba", index, 3, 32, records.style)
        b, regions_b, _ = render_image(records.identities[identity], flipped, "celeba", index, 3, 32, records.style)
        changed = (a != b).any(axis=2)
        assert changed.any() and not (changed & ~(regions_a["Eyeglasses"] | regions_b["Eyeglasses"])).any()
        data_b, _ = records.counterfactual(image_id, "eyeglasses", int(flipped[IDX["Eyeglasses"]]))
        assert data_b != data and data_b[:2] == b"\xff\xd8"  # a JPEG, and not the original
    with pytest.raises(FileNotFoundError, match="only for faceaug's synthetic benchmark"):
        RenderRecords.read(tmp_path)  # not a CelebA-format synthetic tree


def test_train_mixing_zero_makes_training_identities_constant(tmp_path):
    render_benchmark(tmp_path, identities=60, images_per_identity=12, size=16, seed=2, lfw_identities=20, workers=2,
                     progress=lambda d, t: None, train_mixing=0.0, fixed_count=True)
    root = tmp_path / "celeba"
    rows = (root / "list_attr_celeba.txt").read_text().splitlines()[2:]
    ident = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines())
    part = dict(line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines())
    by_id: dict[tuple[str, str], set] = {}
    for row in rows:
        name, *values = row.split()
        for attribute in ("Eyeglasses", "Smiling", "No_Beard", "Mouth_Slightly_Open"):
            by_id.setdefault((part[name], ident[name], attribute), set()).add(values[IDX[attribute]])
    train_mixed = [k for k, v in by_id.items() if k[0] == "0" and len(v) > 1]
    test_mixed = [k for k, v in by_id.items() if k[0] != "0" and len(v) > 1]
    assert not train_mixed and test_mixed


# ---------------------------------------------------------------- (f) extra test identities leave the base alone

EXTRA = 3


@pytest.fixture(scope="module")
def extra_tree(trees, tmp_path_factory):
    """trees[0] again (the same parameters), with EXTRA more test identities."""
    out = tmp_path_factory.mktemp("synth_extra")
    return out, _render(out, workers=1, extra_test_identities=EXTRA)


def _lines(root: Path, name: str) -> list[str]:
    return (root / "celeba" / name).read_text().splitlines()


def test_extra_test_identities_leave_every_base_file_unchanged(trees, extra_tree):
    base, base_summary = trees[0], trees[2]
    more, summary = extra_tree
    names = sorted(p.name for p in (base / "celeba" / "img_align_celeba").iterdir())
    assert len(names) == base_summary["celeba"]["images"]
    for name in names:  # base images and their regions: byte-identical
        for sub, file in (("img_align_celeba", name), ("attribute_regions", name.replace(".jpg", ".png"))):
            assert (base / "celeba" / sub / file).read_bytes() == (more / "celeba" / sub / file).read_bytes(), file
    for rel in sorted(p.relative_to(base) for p in (base / "lfw").rglob("*") if p.is_file()):  # LFW untouched
        assert (base / rel).read_bytes() == (more / rel).read_bytes(), rel
    # the annotation files only grow: the base lines first, unchanged (the attribute file's count aside)
    attr_a, attr_b = _lines(base, "list_attr_celeba.txt"), _lines(more, "list_attr_celeba.txt")
    assert int(attr_b[0]) == len(attr_b) - 2 > int(attr_a[0]) and attr_b[1 : len(attr_a)] == attr_a[1:]
    n = len(names)
    for file in ("identity_CelebA.txt", "list_eval_partition.txt"):
        a, b = _lines(base, file), _lines(more, file)
        assert len(a) == n and b[:n] == a and len(b) == len(attr_b) - 2, file
    # the extra images come after every base image, are all test images, of new identity numbers
    ident = [ln.split() for ln in _lines(more, "identity_CelebA.txt")]
    part = [ln.split() for ln in _lines(more, "list_eval_partition.txt")]
    assert [x[0] for x in ident[n:]] == [f"{k:06d}.jpg" for k in range(n + 1, len(ident) + 1)]
    assert {p for _, p in part[n:]} == {"2"}
    base_ids = {int(i) for _, i in ident[:n]}
    extra_ids = {int(i) for _, i in ident[n:]}
    assert extra_ids == set(range(13, 13 + EXTRA)) and min(extra_ids) > max(base_ids)
    # new people, not copies of base ones (their own seed streams), listed after the base people
    import json
    traits = json.loads((more / "synth.json").read_text())["identity_traits"]["celeba"]
    base_traits = json.loads((base / "synth.json").read_text())["identity_traits"]["celeba"]
    assert traits[:12] == base_traits and [t["id"] for t in traits[12:]] == sorted(extra_ids)
    assert {t["partition"] for t in traits[12:]} == {2}
    face = lambda t: (tuple(t["skin"]), t["face_w"])
    assert not {face(t) for t in traits[12:]} & {face(t) for t in base_traits}

    def in_test(ident, part):
        return {int(i) for (_, i), (_, p) in zip(ident, part) if p == "2"}

    base_part = [ln.split() for ln in _lines(base, "list_eval_partition.txt")]
    assert in_test(ident, part) == in_test(ident[:n], base_part) | extra_ids
    assert len(in_test(ident, part)) == len(in_test(ident[:n], base_part)) + EXTRA
    # the summary counts them; the base parameters are as they were
    assert summary["parameters"] == dict(base_summary["parameters"], extra_test_identities=EXTRA)
    assert "extra_test_identities" not in base_summary["parameters"]
    assert summary["celeba"]["identities"] == 12 + EXTRA and summary["celeba"]["images"] == len(ident)
    assert summary["celeba"]["partition_identities"]["2"] == base_summary["celeba"]["partition_identities"]["2"] + EXTRA
    for k in ("0", "1"):
        assert summary["celeba"]["partition_images"][k] == base_summary["celeba"]["partition_images"][k]
    assert sum(summary["celeba"]["partition_images"].values()) == len(ident)


def test_render_records_remake_the_extra_test_images(extra_tree):
    from pipeline.synth import RenderRecords

    more, summary = extra_tree
    root = more / "celeba"
    records = RenderRecords.read(root)
    ident = dict(ln.split() for ln in _lines(more, "identity_CelebA.txt"))
    extra = [name for name, i in ident.items() if int(i) > 12]
    assert len(records.images) == len(ident) and len(records.identities) == 12 + EXTRA and extra
    for image_id in extra:
        identity, index, _ = records.record(image_id)
        assert records.identities[identity].id == int(ident[image_id]) == identity + 1
        assert index == int(image_id[:6])
        data, regions = records.render(image_id)
        assert data == (root / "img_align_celeba" / image_id).read_bytes(), image_id
        assert all((load_regions(root / "attribute_regions" / image_id.replace(".jpg", ".png"))[a] == m).all()
                   for a, m in regions.items())
        value = int(records.labels(image_id)[IDX["Eyeglasses"]])
        flipped, _ = records.counterfactual(image_id, "eyeglasses", 1 - value)
        assert flipped != data and flipped[:2] == b"\xff\xd8"


def test_negative_extra_test_identities_is_refused(tmp_path):
    with pytest.raises(ValueError, match="extra_test_identities must be at least 0, got -1"):
        render_benchmark(tmp_path, identities=3, images_per_identity=1, size=24, lfw_identities=20, workers=1,
                         progress=lambda d, t: None, extra_test_identities=-1)


def test_hidden_traits_of_the_counterfactual_bound_show_only_with_their_attribute(trees):
    """benchmarks/counterfactual_bound.py resamples the Identity fields it names as hidden: they must change a face
    that has the attribute and leave a face without it untouched (else they would not be hidden, or not the attribute's)."""
    import dataclasses
    import importlib.util

    from pipeline.synth import RenderRecords, render_image
    from pipeline.synth.population import BEARD_STYLES, GLASSES_SHAPES

    spec = importlib.util.spec_from_file_location("bound", Path(__file__).parents[2] / "benchmarks" / "counterfactual_bound.py")
    bound = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bound)
    records = RenderRecords.read(trees[0] / "celeba")
    image_id = sorted(records.images)[0]
    identity, index, _ = records.record(image_id)
    ident = records.identities[identity]
    other = {"eyeglasses": {"glasses_shape": next(s for s in GLASSES_SHAPES if s != ident.glasses_shape),
                            "glasses_rgb": (255, 0, 0), "glasses_tint": 200, "glasses_thick": 0.03},
             "no_beard": {"beard_style": next(s for s in BEARD_STYLES if s != ident.beard_style)}}
    for attribute, column, shows in (("eyeglasses", "Eyeglasses", 1), ("no_beard", "No_Beard", 0)):
        assert set(bound.HIDDEN[attribute]) == set(other[attribute])
        changed = dataclasses.replace(ident, **other[attribute])
        for value in (0, 1):
            labels = records.labels(image_id).astype(np.int8)
            labels[IDX[column]] = value
            a = render_image(ident, labels, "celeba", index, records.seed, records.size, records.style)[0]
            b = render_image(changed, labels, "celeba", index, records.seed, records.size, records.style)[0]
            assert (a != b).any() == (value == shows), (attribute, value)
    assert bound.HIDDEN["mouth_slightly_open"] == bound.HIDDEN["smiling"] == ()
