"""Benchmark-wide knobs of the synthetic renderer: how strongly each edited attribute changes a face,
how much one image varies around its identity, and how alike identities are.

Every knob is 1.0 in the original benchmark, and at 1.0 the renderer draws exactly what it drew
before the knob existed (the same bytes), so runs rendered earlier stay valid. Which values a
profile uses is a benchmark decision, taken from baseline-only runs and written down in the
profile before any augmented arm is scored (docs/verification.md, "Choosing the benchmark").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Style:
    """Rendering knobs (all 1.0: the original benchmark).

    glasses   frame width, and the opacity of the lenses (clear lenses get a whitish glare,
              tinted ones darken towards opaque sunglasses): how much of the eyes glasses hide
    beard     beard opacity, and how far up the cheeks a full beard reaches: how much of the jaw
              line a beard hides
    smile     how far the mouth corners lift, the mouth widens, the eyes narrow and the cheeks rise
    mouth     how wide an open mouth opens
    nuisance  the spread of pose (rotation, scale, shift, yaw), lighting (brightness, gradient,
              colour cast), sensor noise and blur of each image around its identity
    identity_spread  how different identities are: continuous face traits (shape, feature sizes and
              positions) and colours (skin, eyes, lips, hair shade) are pulled towards the population
              centre by this factor; categories (hair colour and style, glasses shape, beard style)
              are unchanged, so every label keeps its meaning and prevalence
    """

    glasses: float = 1.0
    beard: float = 1.0
    smile: float = 1.0
    mouth: float = 1.0
    nuisance: float = 1.0
    identity_spread: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value >= 0.0 or value != value or value == float("inf"):
                raise ValueError(f"Style.{name} must be a finite number >= 0, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_STYLE = Style()


def scaled(value: float, centre: float, factor: float) -> float:
    """`value` moved away from (factor > 1) or towards (factor < 1) `centre`; exactly `value` at 1."""
    return value if factor == 1.0 else centre + (value - centre) * factor
