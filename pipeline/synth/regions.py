"""Ground-truth regions of the four edited attributes: where each attribute can change an image.

A region is drawn from the same shapes as the face (`_geometry`), with the same transform, at
the output resolution, and dilated by the blur's reach, so it covers every pixel its attribute
can change in that image (tests render a face with and without each attribute to check this).
Regions are stored packed, one uint8 per pixel with bit k = `pipeline.attributes.REGION_BITS`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from pipeline.attributes import REGION_BITS
from pipeline.synth import _geometry as geo
from pipeline.synth.population import Identity
from pipeline.synth.style import Style


def encode_regions(regions: dict[str, np.ndarray]) -> np.ndarray:
    """Pack the four masks into one uint8 image (bit k = REGION_BITS' attribute k)."""
    out = None
    for name, bit in REGION_BITS.items():
        layer = regions[name].astype(np.uint8) << bit
        out = layer if out is None else out | layer
    return out


def decode_regions(packed: np.ndarray) -> dict[str, np.ndarray]:
    return {name: (packed >> bit) & 1 > 0 for name, bit in REGION_BITS.items()}


def _or_dilate(packed: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation of every bit plane at once: OR over shifts (separable)."""
    if radius <= 0:
        return packed
    out = packed.copy()
    for r in range(1, radius + 1):
        out[r:] |= packed[:-r]
        out[:-r] |= packed[r:]
    rows = out.copy()
    for r in range(1, radius + 1):
        out[:, r:] |= rows[:, :-r]
        out[:, :-r] |= rows[:, r:]
    return out


def face_regions(ident: Identity, lay_now: geo.Layout, params, out_side: int, frame: float, style: Style) -> dict[str, np.ndarray]:
    """Per-attribute boolean masks at output resolution for one image (see the module docstring)."""
    F = geo.Frame(params, out_side, frame)
    reach = 1 + int(math.ceil(3 * params.blur))
    masks: dict[str, Image.Image] = {}

    def new():
        m = Image.new("L", (out_side, out_side), 0)
        return m, ImageDraw.Draw(m)

    # eyeglasses: lenses, frames, bridge and temples (with the frame's width), for the face's smile state
    m, d = new()
    w = F.w(geo.glasses_width(ident, style)) + 1
    for s in (-1, 1):
        lens = F.pts(geo.lens(ident, lay_now, s), inner=True)
        d.polygon(lens, fill=255)
        d.line(lens + lens[:1], fill=255, width=w, joint="curve")
    bridge, temples = geo.glasses_lines(ident, lay_now)
    d.line(F.pts(bridge, inner=True), fill=255, width=w, joint="curve")
    for tmp in temples:
        a, = F.pts(tmp[:1], inner=True)
        b, = F.pts(tmp[1:])
        d.line([a, b], fill=255, width=w)
    masks["Eyeglasses"] = m

    # mouth: the lips and opening in every state (and the lower face, where an open mouth drops the jaw)
    m, d = new()
    d.polygon(F.pts(geo.region_mouth(ident, lay_now), inner=True), fill=255)
    jaw = geo.region_jaw(ident, lay_now, style)
    if jaw is not None:
        d.polygon(F.pts(jaw), fill=255)
    masks["Mouth_Slightly_Open"] = m

    # smiling: mouth, nasolabial band and cheeks
    m, d = new()
    for poly in geo.region_smile(ident, lay_now):
        d.polygon(F.pts(poly, inner=True), fill=255)
    # the smile squints the eyes a little
    for s in (-1, 1):
        d.polygon(F.pts(geo.superellipse(s * ident.eye_spacing, lay_now.eye_y, ident.eye_size + 0.02, ident.eye_size * 0.5 + 0.02),
                        inner=True), fill=255)
    masks["Smiling"] = m

    # beard: jaw, chin, upper lip, for every beard style (computed for both smile states, and an open mouth
    # where it drops the jaw)
    m, d = new()
    for smile, mouth_open in ((False, False), (True, False)) + (((False, True), (True, True)) if style.mouth > 1.0 else ()):
        lay = geo.layout(ident, smile, mouth_open, style)
        full, goatee, must = geo.beard_shapes(ident, lay)
        d.polygon(F.pts(full), fill=255)
        d.polygon(F.pts(goatee, inner=True), fill=255)
        d.polygon(F.pts(must, inner=True), fill=255)
    masks["No_Beard"] = m
    packed = encode_regions({k: np.asarray(v) > 0 for k, v in masks.items()})
    return decode_regions(_or_dilate(packed, reach))
