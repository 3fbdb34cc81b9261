"""The synthetic face benchmark: the project's embedded default dataset.

`render_benchmark` writes a CelebA-aligned-format tree (images, the three annotation
files, per-image ground-truth regions of the four edited attributes, and the render records
that re-make any image) and an LFW-format tree (different people, shifted domain, pairs and
attribute files) that the project's real-dataset readers load unchanged. `render_face` draws
one face with chosen labels, so an attribute can be flipped with everything else fixed
(`RenderRecords.counterfactual`). `Style` holds the benchmark's knobs.
"""

from pipeline.attributes import REGION_BITS
from pipeline.synth.faces import ImageParams, canvas_side, render_face, sample_params
from pipeline.synth.population import (
    RENDERED_ATTRIBUTES, Identity, Person, identity_level_fractions, images_per_identity, load_stats,
    sample_labels, sample_person, sex_conditionals, without_mixing,
)
from pipeline.synth.recipe import RenderRecords, identity_from_summary, jpeg_bytes, render_image
from pipeline.synth.regions import decode_regions, encode_regions
from pipeline.synth.style import DEFAULT_STYLE, Style
from pipeline.synth.writer import load_regions, render_benchmark

__all__ = [
    "DEFAULT_STYLE", "REGION_BITS", "RENDERED_ATTRIBUTES", "Identity", "ImageParams", "Person", "RenderRecords", "Style",
    "canvas_side", "decode_regions", "encode_regions", "identity_from_summary", "identity_level_fractions",
    "images_per_identity", "jpeg_bytes", "load_regions", "load_stats", "render_benchmark", "render_face", "render_image",
    "sample_labels", "sample_params", "sample_person", "sex_conditionals", "without_mixing",
]
