"""Synthetic identities and their per-image attribute labels, with CelebA's statistics.

Everything here is sampling only (no drawing), so the statistics can be tested on
large populations quickly. Figures come from `pipeline/reference/celeba_attribute_stats.json`
(a copy of the project's reference file, computed from CelebA's annotation files).

How an attribute is sampled
---------------------------
Each identity has, per attribute, a propensity drawn from a three-part mixture with
the reference's identity-level fractions: "always" (p = 1), "never" (p = 0) or
"mixed" (p ~ Beta with mean mu, where mu is solved so that
always + mixed * mu = prevalence). Each image then draws its label with that p.

Attributes tied to sex (beards, glasses, smiling, lipstick) use per-sex prevalences
(from the reference's conditionals and correlations with Male); the always and mixed
fractions are scaled by prevalence(sex) / prevalence so the overall fractions hold.
An open mouth is conditioned per image on the smile (P(open | smiling) = 0.757,
P(open | not smiling) = 0.223 in the reference).

Identity-constant attributes: Male (CelebA's 2.9% "mixed" identities are label noise),
hair colour (Black/Blond/Brown/Gray_Hair), Bald and Bangs (hair style), because they
are drawn from the identity's rendered traits.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.attributes import CELEBA_ATTRIBUTES

STATS_PATH = Path(__file__).resolve().parent.parent / "reference" / "celeba_attribute_stats.json"

# Beta concentration of a "mixed" identity's propensity (small = identities differ a lot).
MIXED_CONCENTRATION = 3.0

# Attributes whose labels follow the identity's rendered traits or the image's nuisance
# factors; the rest of the 40 are sampled only (not rendered).
RENDERED_ATTRIBUTES: tuple[str, ...] = (
    "Eyeglasses", "Mouth_Slightly_Open", "Smiling", "No_Beard", "Male", "Goatee", "Mustache",
    "5_o_Clock_Shadow", "Wearing_Lipstick", "Black_Hair", "Blond_Hair", "Brown_Hair",
    "Gray_Hair", "Bald", "Bangs", "Blurry",
)

HAIR_COLOURS = ("black", "blond", "brown", "gray", "red", "auburn")
HAIR_STYLES = ("short", "long", "bangs", "bob", "bald")
BEARD_STYLES = ("full", "goatee", "mustache", "stubble")
GLASSES_SHAPES = ("round", "rect", "aviator")


@dataclass(frozen=True)
class Identity:
    """The persistent look of one synthetic person (all values in face units / RGB)."""

    id: int
    male: bool
    face_w: float  # half-width of the face
    face_h: float  # half-height of the face
    jaw: float  # 0.55 (pointed chin) .. 0.9 (square jaw)
    skin: tuple[int, int, int]
    hair_colour: str
    hair_rgb: tuple[int, int, int]
    hair_style: str
    eye_spacing: float
    eye_size: float
    eye_rgb: tuple[int, int, int]
    brow_thick: float
    brow_angle: float
    brow_rgb: tuple[int, int, int]
    nose_len: float
    nose_w: float
    mouth_w: float
    lip_rgb: tuple[int, int, int]
    lip_thick: float
    ear_size: float
    mole: tuple[float, float] | None  # face-unit position of a mole, if any
    freckles: bool
    beard_style: str
    glasses_shape: str
    glasses_rgb: tuple[int, int, int]
    glasses_tint: int  # lens alpha 0 (clear) .. 200 (sunglasses)
    glasses_thick: float
    lipstick_rgb: tuple[int, int, int]

    def summary(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass(frozen=True)
class Person:
    """An identity with its per-attribute propensities (probability of value 1 per image)."""

    identity: Identity
    propensity: dict[str, float]
    mouth_open_class: str  # "always", "never", "mixed"


@lru_cache(maxsize=1)
def load_stats() -> dict:
    """The reference statistics (copied into the package; never read from ../shared)."""
    return json.loads(STATS_PATH.read_text())


def _phi_conditionals(p_a: float, p_b: float, phi: float) -> tuple[float, float]:
    """P(a | b) and P(a | not b) from two prevalences and their phi correlation."""
    p11 = p_a * p_b + phi * math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    return p11 / p_b, (p_a - p11) / (1 - p_b)


@lru_cache(maxsize=1)
def sex_conditionals() -> dict[str, tuple[float, float]]:
    """(P(attr | male), P(attr | female)) for the attributes sampled per sex; 'Beard' = not No_Beard."""
    stats = load_stats()
    attrs = stats["attributes"]
    corr = stats["correlation_key_attributes"]
    cond = stats["conditional"]
    p_male = attrs["Male"]["prevalence"]
    out = {"Beard": (cond["P(beard | male)"], cond["P(beard | female)"])}
    for name in ("Eyeglasses", "Smiling"):
        out[name] = _phi_conditionals(attrs[name]["prevalence"], p_male, corr[name]["Male"])
    # Lipstick is (almost) only worn by women in CelebA; no male correlation is in the file.
    p_lip = attrs["Wearing_Lipstick"]["prevalence"]
    out["Wearing_Lipstick"] = (0.0, min(0.98, p_lip / (1 - p_male)))
    return out


def _mixture(rng: np.random.Generator, always: float, never: float, mixed: float, prevalence: float) -> tuple[float, str]:
    """A propensity from the always/never/mixed mixture whose mean is `prevalence`."""
    total = always + never + mixed
    always, mixed = always / total, mixed / total
    if prevalence <= always:  # cannot happen with consistent figures; keep mean right anyway
        always, mixed = prevalence, 0.0
    if always + mixed > 1.0:
        always, mixed = always / (always + mixed), mixed / (always + mixed)
    mu = (prevalence - always) / mixed if mixed > 0 else 0.0
    mu = min(max(mu, 1e-4), 1 - 1e-4)
    u = rng.random()
    if u < always:
        return 1.0, "always"
    if u < always + mixed:
        k = MIXED_CONCENTRATION
        return float(rng.beta(k * mu, k * (1 - mu))), "mixed"
    return 0.0, "never"


def _scaled_mixture(rng, stat: dict, target: float, flip: bool = False) -> tuple[float, str]:
    """Mixture for a per-group prevalence `target`: always/mixed scaled by target / prevalence.

    flip=True models the complement (e.g. 'has a beard' from No_Beard's figures).
    """
    prev = stat["prevalence"]
    always, never, mixed = stat["identities_always"], stat["identities_never"], stat["identities_mixed"]
    if flip:
        prev, always, never = 1 - prev, never, always
    scale = target / prev
    a, m = always * scale, mixed * scale
    if a + m > 1.0:
        a, m = a / (a + m), m / (a + m)
    return _mixture(rng, a, max(0.0, 1 - a - m), m, target)


def _colour(rng, base: tuple[int, int, int], jitter: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.normal(0, jitter), 0, 255)) for c in base)


_HAIR_RGB = {
    "black": (28, 24, 24), "blond": (214, 182, 120), "brown": (104, 70, 44),
    "gray": (168, 166, 164), "red": (160, 70, 36), "auburn": (120, 52, 40),
}
_SKIN = [(250, 220, 196), (238, 200, 170), (224, 176, 140), (196, 146, 108), (160, 110, 78), (112, 76, 54)]
_EYES = [(70, 50, 30), (40, 30, 22), (60, 110, 160), (80, 120, 80), (110, 90, 60)]
_FRAMES = [(20, 20, 20), (90, 50, 30), (190, 160, 80), (170, 170, 180), (120, 20, 30)]


def sample_identity(rng: np.random.Generator, identity_id: int, male: bool, spread: float = 1.0) -> Identity:
    """Draw an identity's persistent traits (face shape, colours, styles).

    `spread` (Style.identity_spread) pulls the continuous traits and colours towards the population
    centre (< 1: identities look more alike); the draws themselves are the same, so at 1 the identity
    is exactly the original one and categories (hair, glasses, beard styles) never change."""
    stats = load_stats()["attributes"]
    # hair colour: CelebA prevalences for the four labelled colours, the rest red/auburn/unlabelled
    p = np.array([stats["Black_Hair"]["prevalence"], stats["Blond_Hair"]["prevalence"] * (0.5 if male else 1.4),
                  stats["Brown_Hair"]["prevalence"], stats["Gray_Hair"]["prevalence"] * (1.6 if male else 0.5),
                  0.12, 0.24])
    colour = HAIR_COLOURS[int(rng.choice(len(HAIR_COLOURS), p=p / p.sum()))]
    # hair style: short hair and baldness on men; long hair and bangs on women (Bald 2.3%, Bangs 15%)
    style_p = [0.69, 0.05, 0.10, 0.10, 0.06] if male else [0.0, 0.58, 0.19, 0.23, 0.0]
    style = HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=style_p))]
    hair_rgb = _colour(rng, _HAIR_RGB[colour], 10)
    skin = _colour(rng, _SKIN[int(rng.integers(len(_SKIN)))], 8)
    shade = 0.55 if colour != "gray" else 0.6
    brow_rgb = tuple(int(c * shade) for c in hair_rgb) if colour in ("blond", "gray") else hair_rgb
    lip_base = (min(255, skin[0] - 20), int(skin[1] * 0.62), int(skin[2] * 0.62))
    ident = Identity(
        id=identity_id,
        male=male,
        face_w=float(rng.uniform(0.44, 0.52) + (0.03 if male else 0.0)),
        face_h=float(rng.uniform(0.60, 0.70)),
        jaw=float(np.clip(rng.normal(0.80 if male else 0.62, 0.06), 0.5, 0.92)),
        skin=skin,
        hair_colour=colour,
        hair_rgb=hair_rgb,
        hair_style=style,
        eye_spacing=float(rng.uniform(0.17, 0.24)),
        eye_size=float(rng.uniform(0.055, 0.08)),
        eye_rgb=_colour(rng, _EYES[int(rng.integers(len(_EYES)))], 12),
        brow_thick=float(rng.uniform(0.030, 0.045) if male else rng.uniform(0.016, 0.028)),
        brow_angle=float(rng.uniform(-0.12, 0.18)),
        brow_rgb=brow_rgb,
        nose_len=float(rng.uniform(0.16, 0.26)),
        nose_w=float(rng.uniform(0.06, 0.11)),
        mouth_w=float(rng.uniform(0.14, 0.2)),
        lip_rgb=_colour(rng, lip_base, 8),
        lip_thick=float(rng.uniform(0.022, 0.04)),
        ear_size=float(rng.uniform(0.09, 0.13)),
        mole=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.1, 0.35))) if rng.random() < 0.25 else None,
        freckles=bool(rng.random() < 0.12),
        beard_style=BEARD_STYLES[int(rng.choice(4, p=[0.34, 0.36, 0.22, 0.08]))],
        glasses_shape=GLASSES_SHAPES[int(rng.integers(3))],
        glasses_rgb=_FRAMES[int(rng.integers(len(_FRAMES)))],
        glasses_tint=int(rng.choice([0, 0, 0, 0, 60, 200])),
        glasses_thick=float(rng.uniform(0.010, 0.022)),
        lipstick_rgb=_colour(rng, (180, 30, 60), 25),
    )
    return ident if spread == 1.0 else _pulled_together(ident, spread)


# Centres that `spread` pulls traits towards: the middle of each uniform range (per sex where it differs).
_CENTRES = {"face_h": 0.65, "eye_spacing": 0.205, "eye_size": 0.0675, "brow_angle": 0.03, "nose_len": 0.21,
            "nose_w": 0.085, "mouth_w": 0.17, "lip_thick": 0.031, "ear_size": 0.11, "glasses_thick": 0.016}
_MEAN_SKIN = tuple(float(np.mean([s[c] for s in _SKIN])) for c in range(3))
_MEAN_EYES = tuple(float(np.mean([e[c] for e in _EYES])) for c in range(3))


def _pulled_together(ident: Identity, spread: float) -> Identity:
    def towards(value: float, centre: float) -> float:
        return float(centre + (value - centre) * spread)

    def rgb(value, centre) -> tuple[int, int, int]:
        return tuple(int(round(np.clip(towards(v, c), 0, 255))) for v, c in zip(value, centre))

    male = ident.male
    skin = rgb(ident.skin, _MEAN_SKIN)
    hair = rgb(ident.hair_rgb, _HAIR_RGB[ident.hair_colour])  # the colour keeps its category; only its shade varies less
    shade = 0.55 if ident.hair_colour != "gray" else 0.6
    lip_centre = (min(255, skin[0] - 20), int(skin[1] * 0.62), int(skin[2] * 0.62))
    old_centre = (min(255, ident.skin[0] - 20), int(ident.skin[1] * 0.62), int(ident.skin[2] * 0.62))
    lip = rgb(tuple(c + (v - o) for v, c, o in zip(ident.lip_rgb, lip_centre, old_centre)), lip_centre)
    values = {name: towards(getattr(ident, name), centre) for name, centre in _CENTRES.items()}
    return replace(
        ident, skin=skin, hair_rgb=hair, lip_rgb=lip, eye_rgb=rgb(ident.eye_rgb, _MEAN_EYES),
        brow_rgb=tuple(int(c * shade) for c in hair) if ident.hair_colour in ("blond", "gray") else hair,
        face_w=towards(ident.face_w, 0.48 + (0.03 if male else 0.0)), jaw=towards(ident.jaw, 0.80 if male else 0.62),
        brow_thick=towards(ident.brow_thick, 0.0375 if male else 0.022), **values,
    )


def sample_person(rng: np.random.Generator, identity_id: int, spread: float = 1.0) -> Person:
    """An identity with traits and per-attribute propensities (`spread`: see `sample_identity`)."""
    stats = load_stats()["attributes"]
    male = bool(rng.random() < stats["Male"]["prevalence"])
    ident = sample_identity(rng, identity_id, male, spread)
    cond = sex_conditionals()
    g = 0 if male else 1
    prop: dict[str, float] = {}
    for name in CELEBA_ATTRIBUTES:
        s = stats[name]
        prop[name], _ = _mixture(rng, s["identities_always"], s["identities_never"], s["identities_mixed"], s["prevalence"])
    prop["Male"] = 1.0 if male else 0.0
    beard, _ = _scaled_mixture(rng, stats["No_Beard"], cond["Beard"][g], flip=True)
    prop["No_Beard"] = 1.0 - beard
    prop["Eyeglasses"], _ = _scaled_mixture(rng, stats["Eyeglasses"], cond["Eyeglasses"][g])
    prop["Smiling"], _ = _scaled_mixture(rng, stats["Smiling"], cond["Smiling"][g])
    lip = cond["Wearing_Lipstick"][g]
    prop["Wearing_Lipstick"] = _scaled_mixture(rng, stats["Wearing_Lipstick"], lip)[0] if lip > 0 else 0.0
    m = stats["Mouth_Slightly_Open"]
    _, mouth_class = _mixture(rng, m["identities_always"], m["identities_never"], m["identities_mixed"], m["prevalence"])
    for name, colour in (("Black_Hair", "black"), ("Blond_Hair", "blond"), ("Brown_Hair", "brown"), ("Gray_Hair", "gray")):
        prop[name] = 1.0 if ident.hair_colour == colour else 0.0
    prop["Bald"] = 1.0 if ident.hair_style == "bald" else 0.0
    prop["Bangs"] = 1.0 if ident.hair_style == "bangs" else 0.0
    return Person(ident, prop, mouth_class)


def _mouth_open_given_smile() -> tuple[float, float]:
    """Per-image P(open | smile) and P(open | no smile) for a "mixed" identity."""
    stats = load_stats()
    m = stats["attributes"]["Mouth_Slightly_Open"]
    c = stats["conditional"]
    a, mixed = m["identities_always"], m["identities_mixed"]
    total = a + mixed + m["identities_never"]
    a, mixed = a / total, mixed / total
    ps = (c["P(mouth_open | smiling)"] - a) / mixed
    pn = (c["P(mouth_open | not smiling)"] - a) / mixed
    return float(np.clip(ps, 0, 1)), float(np.clip(pn, 0, 1))


def sample_labels(rng: np.random.Generator, person: Person, n: int) -> np.ndarray:
    """n x 40 int8 array of 0/1 labels for n images of one person (CELEBA_ATTRIBUTES order)."""
    idx = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    probs = np.array([person.propensity[name] for name in CELEBA_ATTRIBUTES])
    labels = (rng.random((n, len(CELEBA_ATTRIBUTES))) < probs).astype(np.int8)
    smile = labels[:, idx["Smiling"]].astype(bool)
    ps, pn = _mouth_open_given_smile()
    u = rng.random(n)
    if person.mouth_open_class == "always":
        mouth = np.ones(n, bool)
    elif person.mouth_open_class == "never":
        mouth = np.zeros(n, bool)
    else:
        mouth = u < np.where(smile, ps, pn)
    labels[:, idx["Mouth_Slightly_Open"]] = mouth
    # beard styles set Goatee / Mustache / 5_o_Clock_Shadow consistently with what is drawn
    beard = labels[:, idx["No_Beard"]] == 0
    style = person.identity.beard_style
    labels[:, idx["Goatee"]] = beard & (style == "goatee")
    labels[:, idx["Mustache"]] = beard & (style == "mustache")
    shadow = labels[:, idx["5_o_Clock_Shadow"]].astype(bool)
    labels[:, idx["5_o_Clock_Shadow"]] = np.where(beard, style == "stubble", shadow & person.identity.male)
    return labels


def images_per_identity(rng: np.random.Generator, n_identities: int, k: int, fixed: bool = False) -> np.ndarray:
    """Per-identity image counts shaped like CelebA's (min 1, p10 .24K, median K, p90 1.43K, max 1.67K)."""
    if fixed:
        return np.full(n_identities, k, dtype=np.int64)
    q = load_stats()["identity_file"]["images_per_identity"]
    med = q["median"]
    xs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    ys = np.array([q["min"] / med * k, q["p10"] / med * k, k, q["p90"] / med * k, q["max"] / med * k])
    ys[0] = min(ys[0], 1.0)
    counts = np.rint(np.interp(rng.random(n_identities), xs, ys)).astype(np.int64)
    return np.maximum(counts, 1)


def identity_level_fractions(labels_per_identity: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Fraction of identities that always / never / sometimes have each attribute."""
    out = {}
    for j, name in enumerate(CELEBA_ATTRIBUTES):
        means = np.array([lab[:, j].mean() for lab in labels_per_identity])
        out[name] = {"always": float((means == 1).mean()), "never": float((means == 0).mean()),
                     "mixed": float(((means > 0) & (means < 1)).mean())}
    return out


def without_mixing(person: Person, rng: np.random.Generator, keep: float) -> Person:
    """The person with their edited attributes made (mostly) identity-constant: each "mixed" propensity
    of Eyeglasses, Smiling and No_Beard is kept with probability `keep`, otherwise replaced by always (1)
    or never (0) with its own probability, so the prevalence holds in expectation; the open mouth's class
    likewise becomes "always" or "never". The stress setting's training identities (`train_mixing`)."""
    prop = dict(person.propensity)
    for name in ("Eyeglasses", "Smiling", "No_Beard"):
        p = prop[name]
        if 0.0 < p < 1.0 and rng.random() >= keep:
            prop[name] = 1.0 if rng.random() < p else 0.0
    mouth = person.mouth_open_class
    if mouth == "mixed" and rng.random() >= keep:
        ps, pn = _mouth_open_given_smile()
        rate = ps * prop["Smiling"] + pn * (1.0 - prop["Smiling"])
        mouth = "always" if rng.random() < rate else "never"
    return Person(person.identity, prop, mouth)
