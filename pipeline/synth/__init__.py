"""The synthetic face benchmark: the project's embedded default dataset.

`render_benchmark` writes a CelebA-aligned-format tree (images, the three annotation
files, per-image ground-truth regions of the four edited attributes) and an
LFW-format tree (different people, shifted domain, pairs files) that the project's
real-dataset readers load unchanged. `render_face` draws one face with chosen labels,
so an attribute can be flipped with everything else fixed.
"""

from pipeline.synth.faces import (
    REGION_BITS, ImageParams, canvas_side, decode_regions, encode_regions, render_face, sample_params,
)
from pipeline.synth.population import (
    RENDERED_ATTRIBUTES, Identity, Person, identity_level_fractions, images_per_identity, load_stats,
    sample_labels, sample_person, sex_conditionals,
)
from pipeline.synth.writer import load_regions, render_benchmark

__all__ = [
    "REGION_BITS", "RENDERED_ATTRIBUTES", "Identity", "ImageParams", "Person", "canvas_side", "decode_regions",
    "encode_regions", "identity_level_fractions", "images_per_identity", "load_regions", "load_stats",
    "render_benchmark", "render_face", "sample_labels", "sample_params", "sample_person", "sex_conditionals",
]
