"""The SaGAN paper's CelebA protocol (section 4.3): on the test identities, one randomly chosen image
per identity is the *target* and the rest are *queries*; every query is compared with every target
(genuine = same identity), and the result is reported as a ROC."""

from __future__ import annotations

import numpy as np

from recognition.protocols import PROTOCOLS, PairSet, Protocol
from recognition.protocols._pairs import celeba_targets


@PROTOCOLS.register("celeba")
class CelebATargetQuery(Protocol):
    name = "celeba"
    title = "CelebA-format test identities (one target per identity, every query against every target)"

    def pair_sets(self) -> dict[str, PairSet]:
        identities = np.asarray(self.data.celeba_identity)
        targets, queries = celeba_targets(identities, self.cfg.evaluation.target_seed)
        q_ids, t_ids = identities[queries], identities[targets]
        labels = (q_ids[:, None] == t_ids[None, :]).ravel()
        # the resampling clusters: the identities of the query and of the target
        groups = np.stack([np.repeat(q_ids, t_ids.size), np.tile(t_ids, q_ids.size)], 1)
        return {self.name: PairSet("celeba", labels, groups, grid=(queries, targets), description=self.title)}
