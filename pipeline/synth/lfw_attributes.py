"""The synthetic LFW tree's labels, written as Kumar et al.'s `lfw_attributes.txt` (see
`pipeline/lfw_attributes.py` for the format), so the LFW cross-attribute protocol reads the synthetic
benchmark and the real dataset through the same reader.

Scores are signed like the real classifier outputs: a label the renderer drew (CelebA's 40, mapped to
the file's column names) becomes +(0.3 + |N(0, 1)|) when present and its negative when absent; the
file's columns with no CelebA counterpart get absent-looking scores. Deterministic in the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.lfw_attributes import ATTRIBUTES_FILE, LFW_ATTRIBUTE_NAMES
from pipeline.synth.population import Identity

_FROM_CELEBA = {
    "Male": "Male", "Young": "Youth", "Black_Hair": "Black Hair", "Blond_Hair": "Blond Hair", "Brown_Hair": "Brown Hair",
    "Bald": "Bald", "Eyeglasses": "Eyeglasses", "Mustache": "Mustache", "Smiling": "Smiling", "Chubby": "Chubby",
    "Blurry": "Blurry", "Wavy_Hair": "Wavy Hair", "Straight_Hair": "Straight Hair", "Receding_Hairline": "Receding Hairline",
    "Bangs": "Bangs", "Sideburns": "Sideburns", "Bushy_Eyebrows": "Bushy Eyebrows", "Arched_Eyebrows": "Arched Eyebrows",
    "Narrow_Eyes": "Narrow Eyes", "Big_Nose": "Big Nose", "Pointy_Nose": "Pointy Nose", "Big_Lips": "Big Lips",
    "Mouth_Slightly_Open": "Mouth Slightly Open", "No_Beard": "No Beard", "Goatee": "Goatee", "Double_Chin": "Double Chin",
    "Wearing_Hat": "Wearing Hat", "Oval_Face": "Oval Face", "Gray_Hair": "Gray Hair", "Bags_Under_Eyes": "Bags Under Eyes",
    "Heavy_Makeup": "Heavy Makeup", "Rosy_Cheeks": "Rosy Cheeks", "Pale_Skin": "Pale Skin",
    "5_o_Clock_Shadow": "5 o' Clock Shadow", "Wearing_Lipstick": "Wearing Lipstick", "High_Cheekbones": "High Cheekbones",
    "Wearing_Earrings": "Wearing Earrings", "Wearing_Necktie": "Wearing Necktie", "Wearing_Necklace": "Wearing Necklace",
}
_CELEBA_INDEX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
SUNGLASSES_TINT = 150  # lens alpha from which synthetic glasses count as sunglasses


def _present(labels: np.ndarray, ident: Identity) -> np.ndarray:
    """73 booleans in LFW_ATTRIBUTE_NAMES order for one image."""
    out = np.zeros(len(LFW_ATTRIBUTE_NAMES), dtype=bool)
    col = {name: j for j, name in enumerate(LFW_ATTRIBUTE_NAMES)}
    for celeba, lfw in _FROM_CELEBA.items():
        out[col[lfw]] = bool(labels[_CELEBA_INDEX[celeba]])
    glasses = bool(labels[_CELEBA_INDEX["Eyeglasses"]])
    out[col["No Eyewear"]] = not glasses
    out[col["Sunglasses"]] = glasses and ident.glasses_tint >= SUNGLASSES_TINT
    out[col["Mouth Closed"]] = not labels[_CELEBA_INDEX["Mouth_Slightly_Open"]]
    out[col["Teeth Not Visible"]] = not labels[_CELEBA_INDEX["Mouth_Slightly_Open"]]
    out[col["Color Photo"]] = True
    out[col["Eyes Open"]] = True
    return out


def write_lfw_attributes(lfw_root: str | Path, rows: list[tuple[str, int, np.ndarray, Identity]], seed: int) -> Path:
    """Write `lfw_root/lfw_attributes.txt` for (person with spaces, image number, 40 labels, identity) rows."""
    rng = np.random.default_rng([seed, 0x1F3A])
    lines = ["# faceaug synthetic LFW attribute scores (the format of Kumar et al., ICCV 2009); > 0 means present",
             "#\t" + "\t".join(("person", "imagenum") + LFW_ATTRIBUTE_NAMES)]
    for person, number, labels, ident in rows:
        present = _present(np.asarray(labels), ident)
        magnitude = 0.3 + np.abs(rng.standard_normal(len(present)))
        scores = np.where(present, magnitude, -magnitude)
        lines.append(f"{person}\t{number}\t" + "\t".join(f"{v:.5f}" for v in scores))
    path = Path(lfw_root) / ATTRIBUTES_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
