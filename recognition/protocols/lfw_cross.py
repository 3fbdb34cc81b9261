"""Cross-attribute pairs on LFW, from the attribute scores of Kumar et al. (`lfw_attributes.txt`, read by
`pipeline.lfw_attributes`; the synthetic LFW tree writes its labels in that format).

For each edited attribute and each of pairs.txt's 10 folds (their people: LFW's folds share no one),
matched pairs are two images of one person that differ (or agree) in the attribute, and mismatched pairs
two images of two people of the same sex that differ (or agree) in it, as many mismatched as matched
(at most 300 each, like pairs.txt). They are scored like pairs.txt: 10-fold accuracy with the threshold
chosen on the other nine folds, and the pooled ROC. Without an attribute file the protocol has no pairs
(and says so); a fold with too few matched pairs contributes what it has.
"""

from __future__ import annotations

import numpy as np

from pipeline.attributes import EDITED_ATTRIBUTES
from recognition.cross_attribute import SPLITS, sample_impostors, within_identity_pairs
from recognition.protocols import PROTOCOLS, PairSet, Protocol

PER_FOLD = 300  # matched (= mismatched) pairs per fold at most, as pairs.txt


@PROTOCOLS.register("lfw-cross")
class LFWCrossAttribute(Protocol):
    name = "lfw-cross"
    title = "LFW, pairs that differ / agree in an attribute (lfw_attributes.txt; impostors matched on sex; 10 folds)"

    def pair_sets(self) -> dict[str, PairSet]:
        data = self.data
        if data.lfw_attributes is None:
            return {}
        images = np.asarray(data.lfw_ids).tolist()
        people = np.asarray([path.split("/", 1)[0] for path in images])
        person_ids = np.unique(people, return_inverse=True)[1]
        fold_of_person: dict[str, int] = {}
        for pair in data.lfw_pairs:
            for rel in (pair.left, pair.right):
                fold_of_person.setdefault(rel.split("/", 1)[0], int(pair.fold))
        folds = np.asarray([fold_of_person.get(p, -1) for p in people])
        male = data.lfw_attributes.present("male")
        scored = np.asarray([img in male for img in images])  # images the attribute file covers
        # sex per person: the majority of their images' Male scores
        male_votes: dict[str, list[bool]] = {}
        for img, person in zip(images, people):
            if img in male:
                male_votes.setdefault(person, []).append(male[img])
        sex = np.asarray([int(2 * sum(male_votes.get(p, [])) >= max(len(male_votes.get(p, [])), 1)) for p in people])
        rng = np.random.default_rng([self.cfg.evaluation.target_seed, 0x1F0])
        out = {}
        for attribute in EDITED_ATTRIBUTES:  # every edited attribute, whichever ones the run edits
            present = data.lfw_attributes.present(attribute)
            values = np.asarray([present.get(img, False) for img in images])
            for split in SPLITS:
                left, right, labels, fold_col = [], [], [], []
                for fold in sorted(set(folds.tolist()) - {-1}):
                    members = np.flatnonzero((folds == fold) & scored)
                    gl, gr = within_identity_pairs(person_ids[members])
                    gl, gr = members[gl], members[gr]
                    keep = (values[gl] != values[gr]) if split == "differ" else (values[gl] == values[gr])
                    gl, gr = gl[keep], gr[keep]
                    n = min(gl.size, PER_FOLD)
                    if n == 0:
                        continue
                    pick = np.sort(rng.choice(gl.size, n, replace=False))
                    in_fold = np.zeros(len(images), bool)
                    in_fold[members] = True
                    if split == "differ":
                        il, ir = sample_impostors(person_ids, in_fold & values, in_fold & ~values, sex, n, rng)
                    else:
                        a = sample_impostors(person_ids, in_fold & values, in_fold & values, sex, n // 2, rng)
                        b = sample_impostors(person_ids, in_fold & ~values, in_fold & ~values, sex, n - a[0].size, rng)
                        il, ir = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
                    left += [gl[pick], il]
                    right += [gr[pick], ir]
                    labels += [np.ones(n, bool), np.zeros(il.size, bool)]
                    fold_col += [np.full(n + il.size, fold)]
                if not left:
                    left, right, labels, fold_col = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, bool)], [np.zeros(0, np.int64)]
                lft, rgt = np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)
                out[f"{self.name}/{attribute}/{split}"] = PairSet(
                    "lfw", np.concatenate(labels), np.stack([person_ids[lft], person_ids[rgt]], 1), left=lft, right=rgt,
                    folds=np.concatenate(fold_col), description=f"{attribute}: LFW images that {split} in it, in pairs.txt's folds")
        return out
