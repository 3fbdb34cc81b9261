"""LFW's standard protocol: the 6,000 pairs of `pairs.txt` in 10 folds (accuracy with the threshold
chosen on the other nine folds, `lfw_tenfold`), plus the pooled ROC."""

from __future__ import annotations

import numpy as np

from recognition.protocols import PROTOCOLS, PairSet, Protocol


@PROTOCOLS.register("lfw")
class LFWPairs(Protocol):
    name = "lfw"
    title = "LFW pairs.txt (10 folds)"

    def pair_sets(self) -> dict[str, PairSet]:
        pairs = self.data.lfw_pairs
        index = {sid: i for i, sid in enumerate(np.asarray(self.data.lfw_ids).tolist())}
        missing = sorted({p for pair in pairs for p in (pair.left, pair.right) if p not in index})
        if missing:
            raise KeyError(f"{len(missing)} LFW images have no embedding, e.g. {missing[:5]}")
        if not pairs:
            raise ValueError("no LFW pairs")
        left = np.fromiter((index[p.left] for p in pairs), dtype=np.int64, count=len(pairs))
        right = np.fromiter((index[p.right] for p in pairs), dtype=np.int64, count=len(pairs))
        labels = np.fromiter((bool(p.same) for p in pairs), dtype=bool, count=len(pairs))
        folds = np.fromiter((int(p.fold) for p in pairs), dtype=np.int64, count=len(pairs))
        # pairs share people: the resampling clusters are the two people of each pair
        person = np.unique([rel.split("/", 1)[0] for rel in index], return_inverse=True)[1]
        person_of = dict(zip(index, person))
        groups = np.asarray([[person_of[p.left], person_of[p.right]] for p in pairs], dtype=np.int64)
        return {self.name: PairSet("lfw", labels, groups, left=left, right=right, folds=folds, description=self.title)}
