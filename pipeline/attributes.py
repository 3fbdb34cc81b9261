"""CelebA's 40 attribute names and the four attributes this project edits.

Attribute values are held as 0/1 everywhere in the code (the paper's c ∈ {0, 1});
the CelebA annotation files write them as -1/1 and the readers convert.
"""

from __future__ import annotations

# The order of list_attr_celeba.txt's second line.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
    "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# The paper's four exemplar attributes, by the snake-case name used in configs and on the CLI.
EDITED_ATTRIBUTES: dict[str, str] = {
    "eyeglasses": "Eyeglasses",
    "mouth_slightly_open": "Mouth_Slightly_Open",
    "smiling": "Smiling",
    "no_beard": "No_Beard",
}


def column_of(attribute: str) -> str:
    """CelebA column name for a config name ('eyeglasses') or a column name ('Eyeglasses')."""
    if attribute in EDITED_ATTRIBUTES:
        return EDITED_ATTRIBUTES[attribute]
    if attribute in CELEBA_ATTRIBUTES:
        return attribute
    lowered = {name.lower(): name for name in CELEBA_ATTRIBUTES}
    if attribute.lower() in lowered:
        return lowered[attribute.lower()]
    raise KeyError(f"unknown attribute {attribute!r}; CelebA has: {', '.join(CELEBA_ATTRIBUTES)}")


def index_of(attribute: str) -> int:
    """Position of an attribute in the 40-value vector."""
    return CELEBA_ATTRIBUTES.index(column_of(attribute))


# Ground-truth attribute regions (synthetic benchmark) are stored as one uint8 bitmask per image:
# bit k is set where EDITED_ATTRIBUTES' k-th attribute can change the image.
REGION_BITS: dict[str, int] = {column: k for k, column in enumerate(EDITED_ATTRIBUTES.values())}


def region_bit(attribute: str) -> int:
    """The bit of an edited attribute ('eyeglasses' or 'Eyeglasses') in a region bitmask."""
    column = column_of(attribute)
    if column not in REGION_BITS:
        raise KeyError(f"{attribute!r} has no ground-truth region; regions exist for {list(EDITED_ATTRIBUTES)}")
    return REGION_BITS[column]


def region_mask(bits, attribute: str):
    """The boolean region of one attribute from bitmasks (a NumPy array or a torch tensor of any shape)."""
    bit = region_bit(attribute)
    if hasattr(bits, "long"):  # torch
        return ((bits.long() >> bit) & 1).bool()
    return ((bits >> bit) & 1).astype(bool)
