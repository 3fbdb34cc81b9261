"""The cross-attribute pairs say what they claim: genuine pairs that differ (agree) in the attribute, impostor
pairs that also differ (agree) in it and share the identity-level key (sex), no pair twice, every
within-identity pair in exactly one split; the LFW version stays inside pairs.txt's folds."""

import numpy as np
import pytest

from pipeline.attributes import EDITED_ATTRIBUTES
from pipeline.lfw import Pair
from pipeline.lfw_attributes import LFWAttributes, image_of
from recognition.cross_attribute import cross_attribute_pairs, identity_majority, within_identity_pairs
from recognition.protocols import PROTOCOLS
from recognition.protocols import TestData as _TestData


def _population(seed: int, identities: int = 40, per_identity: int = 6):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(identities) * 7 + 3, per_identity)  # non-contiguous labels
    rng.shuffle(ids)
    values = rng.random(ids.size) < 0.35
    sex = identity_majority(ids, (ids % 2).astype(np.int64))  # constant within an identity
    return ids, values, sex


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairs_differ_or_agree_as_named_and_impostors_are_matched(seed):
    ids, values, sex = _population(seed)
    pairs = cross_attribute_pairs(ids, values, sex, max_impostors=300, seed=seed)
    genuine_total = 0
    for split, p in pairs.items():
        left, right, labels = p.left, p.right, p.labels
        assert left.size == right.size == labels.size == p.groups.shape[0] and p.groups.shape[1] == 2
        assert np.all(left != right)
        differ = values[left] != values[right]
        assert np.all(differ) if split == "differ" else not np.any(differ)
        # genuine = same identity, impostor = two identities of the same sex
        assert np.array_equal(labels, ids[left] == ids[right])
        impostor = ~labels
        assert np.all(sex[left[impostor]] == sex[right[impostor]])
        assert 0 < impostor.sum() <= 300
        # resampling clusters are both images' identities
        assert np.array_equal(p.groups, np.stack([ids[left], ids[right]], 1))
        # no unordered pair twice
        keys = {(min(a, b), max(a, b)) for a, b in zip(left.tolist(), right.tolist())}
        assert len(keys) == left.size
        genuine_total += int(labels.sum())
    gl, _ = within_identity_pairs(ids)
    assert genuine_total == gl.size  # every within-identity pair lands in exactly one split
    again = cross_attribute_pairs(ids, values, sex, max_impostors=300, seed=seed)
    assert all(np.array_equal(again[s].left, pairs[s].left) and np.array_equal(again[s].right, pairs[s].right) for s in pairs)


def test_impostors_stop_when_the_eligible_pairs_run_out():
    ids = np.array([0, 0, 1, 1, 2, 2])
    values = np.array([1, 0, 1, 0, 1, 0], bool)
    sex = np.array([0, 0, 0, 0, 1, 1])  # identity 2 may only meet itself: no impostor of its sex
    pairs = cross_attribute_pairs(ids, values, sex, max_impostors=1000, seed=0)
    # differ impostors: (with glasses, without) across identities 0 and 1 only: 0a-1b and 1a-0b
    assert pairs["differ"].impostors == 2
    assert pairs["differ"].genuine == 3  # each identity's one pair differs


class _Cfg:
    class evaluation:
        target_seed = 0
        cross_impostors = 500


def test_lfw_cross_pairs_stay_in_their_fold_and_match_sex():
    rng = np.random.default_rng(5)
    people = [f"Person {chr(65 + i)}{chr(65 + j)}" for i in range(6) for j in range(4)]  # 24 people
    images, rows = [], []
    for k, person in enumerate(people):
        for n in range(1, 5):
            images.append(image_of(person, n))
            scores = rng.normal(size=5)
            scores[0] = 1.0 if k % 2 else -1.0  # Male: constant per person
            rows.append(scores)
    attrs = LFWAttributes(tuple(images), ("Male", "Eyeglasses", "Smiling", "Mouth Slightly Open", "No Beard"),
                          np.asarray(rows, np.float32))
    # pairs.txt puts each person in one fold: people 0-11 in fold 0, 12-23 in fold 1
    fold_pairs = [Pair(image_of(p, 1), image_of(p, 2), True, 0 if k < 12 else 1, k + 1) for k, p in enumerate(people)]
    data = _TestData(celeba_ids=np.zeros(0), celeba_identity=np.zeros(0, np.int64), celeba_attributes=None,
                    lfw_ids=np.asarray(images), lfw_pairs=fold_pairs, lfw_attributes=attrs)
    sets = PROTOCOLS.get("lfw-cross")(_Cfg, data).pair_sets()
    assert set(sets) == {f"lfw-cross/{a}/{s}" for a in EDITED_ATTRIBUTES for s in ("differ", "agree")}
    person = np.asarray([i.split("/")[0] for i in images])
    fold_of = {p.replace(" ", "_"): (0 if k < 12 else 1) for k, p in enumerate(people)}
    for name, ps in sets.items():
        attribute, split = name.split("/")[1:]
        present = attrs.present(attribute)
        value = np.asarray([present[i] for i in images])
        male = np.asarray([attrs.present("male")[i] for i in images])
        assert ps.genuine > 0 and ps.impostors > 0, name
        assert np.array_equal(ps.labels, person[ps.left] == person[ps.right])
        differ = value[ps.left] != value[ps.right]
        assert np.all(differ) if split == "differ" else not np.any(differ)
        assert np.all(male[ps.left[~ps.labels]] == male[ps.right[~ps.labels]])
        # both images of every pair belong to the fold the pair is scored in
        assert all(fold_of[person[a]] == f == fold_of[person[b]] for a, b, f in zip(ps.left, ps.right, ps.folds))


def test_without_an_attribute_file_lfw_cross_has_no_pairs():
    data = _TestData(celeba_ids=np.zeros(0), celeba_identity=np.zeros(0, np.int64), celeba_attributes=None,
                    lfw_ids=np.asarray(["A/A_0001.jpg"]), lfw_pairs=[], lfw_attributes=None)
    assert PROTOCOLS.get("lfw-cross")(_Cfg, data).pair_sets() == {}
