"""Cross-attribute verification on the CelebA-format test identities (which carry all 40 labels, on the
real CelebA files too): for each edited attribute, pairs whose two images *differ* in it and pairs whose
images *agree*, genuine and impostor alike, impostors matched on sex (`recognition.cross_attribute`).

Attribute augmentation is meant to help exactly when the two faces compared differ in the attribute
(MeGlass: gallery without glasses, probe with; CALFW/CPLFW: genuine pairs across age or pose, impostors
of the same sex and ethnicity). The gap between the `agree` and the `differ` sets is how much the
attribute costs the verifier; a repair shows as a gain on `differ`.
"""

from __future__ import annotations

import numpy as np

from pipeline.attributes import EDITED_ATTRIBUTES, index_of
from recognition.cross_attribute import SPLITS, cross_attribute_pairs, identity_majority
from recognition.protocols import PROTOCOLS, PairSet, Protocol


@PROTOCOLS.register("celeba-cross")
class CelebACrossAttribute(Protocol):
    name = "celeba-cross"
    title = "CelebA-format test identities, pairs that differ / agree in an attribute (impostors matched on sex)"

    def pair_sets(self) -> dict[str, PairSet]:
        data = self.data
        if data.celeba_attributes is None:
            raise ValueError("the cross-attribute protocol needs the test images' 40 labels (TestData.celeba_attributes)")
        identities = np.asarray(data.celeba_identity)
        sex = identity_majority(identities, data.celeba_attributes[:, index_of("Male")])
        out = {}
        for attribute in EDITED_ATTRIBUTES:  # every edited attribute, whichever ones the run edits
            values = data.celeba_attributes[:, index_of(attribute)]
            pairs = cross_attribute_pairs(identities, values, sex, max_impostors=self.cfg.evaluation.cross_impostors,
                                          seed=self.cfg.evaluation.target_seed)
            for split in SPLITS:
                p = pairs[split]
                out[f"{self.name}/{attribute}/{split}"] = PairSet(
                    "celeba", p.labels, p.groups, left=p.left, right=p.right,
                    description=f"{attribute}: images that {split} in it (impostors too, matched on sex)")
        return out
