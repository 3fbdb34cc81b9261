"""Drawing one synthetic face.

Every shape is a polygon in *face units* (`_geometry.py`), mapped to pixels by one affine
transform per image (in-plane rotation, scale, shift) after a small horizontal shift of the
inner features (a yaw-like nuisance). The face is drawn with Pillow at 2x and box-downsampled;
lighting, sensor noise and blur follow in NumPy/Pillow. The ground-truth regions of the edited
attributes (`regions.py`) are drawn from the same shapes with the same transform.

Rendering is a pure function of (identity, labels, ImageParams, Style): the nuisance parameters
are drawn from the image's own seed in a fixed order, whatever the labels, so a face can be
re-rendered with one attribute flipped and nothing else changed (the true counterfactual,
`pipeline/synth/counterfactual.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.synth import _geometry as geo
from pipeline.synth.population import Identity
from pipeline.synth.regions import face_regions
from pipeline.synth.style import DEFAULT_STYLE, Style, scaled

SUPERSAMPLE = 2
LFW_FRAME = 0.6  # the face box fills the central 60% of an LFW-style image (LFW_CROP_FRACTION)

_IDX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}


@dataclass(frozen=True)
class ImageParams:
    """Nuisance factors of one image (drawn from its seed; independent of the labels)."""

    domain: str  # "celeba" or "lfw"
    rotation: float  # radians
    scale: float
    shift: tuple[float, float]  # face units
    yaw: float  # horizontal shift of eyes/nose/mouth, face units
    bg_colours: tuple[tuple[int, int, int], ...]
    bg_angle: float
    bg_offset: tuple[int, int]
    brightness: float
    light_grad: float
    light_angle: float
    tint: tuple[float, float, float]
    noise_sigma: float
    noise_offset: tuple[int, int]
    blur: float  # Gaussian sigma in output pixels (0 = none)
    jpeg_quality: int
    shirt: tuple[int, int, int]
    gaze: tuple[float, float]


def sample_params(seed: np.random.SeedSequence | int, domain: str, blurry: bool, size: int, nuisance: float = 1.0) -> ImageParams:
    """Draw an image's nuisance factors; the draw order never depends on `blurry`'s value.

    `nuisance` (Style.nuisance) widens (> 1) or narrows (< 1) the spread of pose, lighting, colour
    cast, sensor noise and blur around their centres; at 1 the values are exactly the original ones."""
    rng = np.random.default_rng(seed)
    lfw = domain == "lfw"
    r = [float(v) for v in rng.random(40)]
    px = size / 128.0
    if lfw:  # LFW: more pose/position jitter, busy scene backgrounds, harsher warmer light
        rotation = math.radians((r[0] * 2 - 1) * 10)
        scale = 0.86 + 0.28 * r[1]
        shift = ((r[2] * 2 - 1) * 0.10, (r[3] * 2 - 1) * 0.10)
        brightness = 0.8 + 0.5 * r[7]
        light_grad = 0.25 + 0.35 * r[8]
        tint = (1.06 + 0.06 * r[10], 1.0, 0.86 - 0.06 * r[11])
        cols = tuple(tuple(int(c) for c in rng.integers(20, 200, 3)) for _ in range(4))
    else:
        rotation = math.radians((r[0] * 2 - 1) * 5)
        scale = 0.94 + 0.12 * r[1]
        shift = ((r[2] * 2 - 1) * 0.04, (r[3] * 2 - 1) * 0.04)
        brightness = 0.8 + 0.35 * r[7]
        light_grad = 0.25 * r[8]
        tint = (1.0 + 0.06 * (r[10] - 0.5), 1.0, 1.0 + 0.06 * (r[11] - 0.5))
        base = rng.integers(60, 245, 3)
        cols = tuple(tuple(int(c) for c in np.clip(base + rng.integers(-60, 60, 3), 0, 255)) for _ in range(2))
        cols = cols + ((0, 0, 0), (0, 0, 0))
    blur = (1.1 + 0.7 * r[12]) * px if blurry else (0.0 if r[13] < 0.5 else 0.6 * r[12] * px)
    yaw = (r[4] * 2 - 1) * 0.035
    noise_sigma = 1.5 + 3.0 * r[16]
    if nuisance != 1.0:
        k = nuisance
        rotation, yaw = rotation * k, yaw * k
        scale = scaled(scale, 1.0, k)
        shift = (shift[0] * k, shift[1] * k)
        brightness = max(0.2, scaled(brightness, 1.0, k))
        light_grad = light_grad * k
        tint = tuple(max(0.3, scaled(t, 1.0, k)) for t in tint)
        noise_sigma = noise_sigma * k
        if not blurry:
            blur = blur * k
    return ImageParams(
        domain=domain, rotation=rotation, scale=scale, shift=shift,
        yaw=yaw,
        bg_colours=cols, bg_angle=float(r[5] * 2 * math.pi),
        bg_offset=(int(r[14] * 10_000), int(r[15] * 10_000)),
        brightness=brightness, light_grad=light_grad, light_angle=float(r[9] * 2 * math.pi),
        tint=tint, noise_sigma=noise_sigma, noise_offset=(int(r[17] * 10_000), int(r[18] * 10_000)),
        blur=blur, jpeg_quality=int(75 + 21 * r[19]) if not lfw else int(70 + 26 * r[19]),
        shirt=tuple(int(c * 200 + 20) for c in r[20:23]),
        gaze=((r[23] * 2 - 1) * 0.25, (r[24] * 2 - 1) * 0.15),
    )


@lru_cache(maxsize=8)
def _noise_bank(side: int, smooth: bool) -> np.ndarray:
    """A fixed float32 noise field (2*side square); smooth=True gives low-frequency blobs."""
    rng = np.random.default_rng(12345 + side * 2 + smooth)
    if smooth:
        small = rng.normal(0, 1, (side // 8 + 4, side // 8 + 4)).astype(np.float32)
        img = Image.fromarray(small, mode="F").resize((2 * side, 2 * side), Image.BICUBIC)
        return np.asarray(img, dtype=np.float32)
    return rng.normal(0, 1, (2 * side, 2 * side)).astype(np.float32)


def _slice(bank: np.ndarray, offset: tuple[int, int], h: int, w: int) -> np.ndarray:
    oy = offset[0] % (bank.shape[0] - h + 1)
    ox = offset[1] % (bank.shape[1] - w + 1)
    return bank[oy : oy + h, ox : ox + w]


def canvas_side(size: int, domain: str) -> int:
    """Output side in pixels: `size` for CelebA, round(size / 0.6) for LFW framing."""
    return size if domain == "celeba" else int(round(size / LFW_FRAME))


# ---------------------------------------------------------------- drawing

def _alpha(value: int, strength: float, cap: int = 255) -> int:
    """An opacity scaled by a style strength (exactly `value` at 1), at most `cap`."""
    return value if strength == 1.0 else int(min(cap, round(value * strength)))


def _shade(rgb, f, add=0):
    return tuple(int(max(0, min(255, c * f + add))) for c in rgb)


def _background(params: ImageParams, side: int) -> Image.Image:
    """Background at `side` pixels, computed at a quarter of that and smoothly upscaled (it is smooth)."""
    low = max(8, side // 4)
    yy, xx = np.mgrid[0:low, 0:low].astype(np.float32) / low - 0.5
    smooth = _slice(_noise_bank(low, True), params.bg_offset, low, low)
    c = np.array(params.bg_colours, dtype=np.float32)
    if params.domain == "lfw":
        # a busy scene: vertical panels of different colours plus blobs
        panel = ((xx + 0.5) * 3 + 0.6 * smooth).astype(np.int32) % 3
        img = c[panel] * (1 + 0.25 * smooth[..., None])
        img = img * 0.7 + c[3] * 0.3 * (yy[..., None] + 0.5)
    else:
        g = np.cos(params.bg_angle) * xx + np.sin(params.bg_angle) * yy + 0.5
        img = c[0] * (1 - g[..., None]) + c[1] * g[..., None]
        img = img + 12 * smooth[..., None]
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return small.resize((side, side), Image.BILINEAR)


def _draw_face(ident: Identity, labels: np.ndarray, params: ImageParams, size: int, style: Style):
    domain = params.domain
    out_side = canvas_side(size, domain)
    frame = 1.0 if domain == "celeba" else LFW_FRAME
    side = out_side * SUPERSAMPLE
    F = geo.Frame(params, side, frame)

    smiling = bool(labels[_IDX["Smiling"]])
    mouth_open = bool(labels[_IDX["Mouth_Slightly_Open"]])
    glasses = bool(labels[_IDX["Eyeglasses"]])
    beard = not bool(labels[_IDX["No_Beard"]])
    lipstick = bool(labels[_IDX["Wearing_Lipstick"]])
    lay = geo.layout(ident, smiling, mouth_open, style)

    im = _background(params, side)
    d = ImageDraw.Draw(im, "RGBA")
    skin = ident.skin
    hair = ident.hair_rgb
    fw, fh = ident.face_w, ident.face_h

    # shoulders, neck, back hair, ears
    d.polygon(F.pts(np.array([[-1.6, 1.6], [-1.3, 0.98], [-0.3, 0.88], [0.3, 0.88], [1.3, 0.98], [1.6, 1.6]])), fill=params.shirt)
    d.polygon(F.pts(np.array([[-fw * 0.48, geo.FACE_CY + fh * 0.5], [fw * 0.48, geo.FACE_CY + fh * 0.5], [fw * 0.5, 0.95], [-fw * 0.5, 0.95]])), fill=_shade(skin, 0.86))
    hair_style = ident.hair_style
    if hair_style in ("long", "bob", "bangs") and not (ident.male and hair_style == "bangs"):
        bottom = geo.FACE_CY + fh + (0.28 if hair_style == "long" or (hair_style == "bangs" and not ident.male) else 0.02)
        top = geo.superellipse(0, geo.FACE_CY - 0.1, fw + 0.12, fh * 0.78 + 0.1, k=24, t0=math.pi, t1=2 * math.pi)
        back = np.concatenate([top, [[fw + 0.14, bottom], [-fw - 0.14, bottom]]])
        d.polygon(F.pts(back), fill=_shade(hair, 0.85))
    for s in (-1, 1):
        d.polygon(F.pts(geo.superellipse(s * fw * 0.97, lay.eye_y + 0.07, ident.ear_size * 0.5, ident.ear_size, k=16)), fill=_shade(skin, 0.93))
    d.polygon(F.pts(geo.face_outline(ident, jaw_drop=lay.jaw_drop)), fill=skin)

    # cheeks (smile lifts and flushes them), freckles, mole
    if smiling:
        for c in geo.cheeks(ident, lay):
            d.polygon(F.pts(c, inner=True), fill=(255, 235, 225, _alpha(70, style.smile)))
            d.polygon(F.pts(c + np.array([0, 0.03]), inner=True), fill=(200, 80, 80, _alpha(40, style.smile)))
    if ident.freckles:
        frng = np.random.default_rng(ident.id * 7919 + 17)
        for p in frng.uniform([-0.3, -0.02], [0.3, 0.12], (14, 2)):
            if abs(p[0]) > 0.08:
                r = 0.008
                d.ellipse(_bbox(F, p, r), fill=_shade(skin, 0.75))
    if ident.mole is not None:
        d.ellipse(_bbox(F, np.array(ident.mole), 0.012), fill=(70, 45, 35))

    # beard (textured, in the hair colour), under the mouth and nose
    if beard:
        _paste_beard(im, ident, lay, F, params, side, style)
        d = ImageDraw.Draw(im, "RGBA")

    if smiling:
        for line in geo.nasolabial(ident, lay):
            d.line(F.pts(line, inner=True), fill=_shade(skin, 0.72) + (200,), width=F.w(0.014), joint="curve")

    # nose
    nt = lay.nose_tip
    d.line(F.pts(np.array([[0.02, lay.eye_y + 0.06], [0.035, nt - 0.03], [ident.nose_w * 0.3, nt]]), inner=True), fill=_shade(skin, 0.8), width=F.w(0.012))
    d.polygon(F.pts(geo.superellipse(0, nt, ident.nose_w * 0.75, 0.035, k=16), inner=True), fill=_shade(skin, 0.92))
    for s in (-1, 1):
        d.polygon(F.pts(geo.superellipse(s * ident.nose_w * 0.45, nt + 0.01, ident.nose_w * 0.2, 0.012, k=12), inner=True), fill=_shade(skin, 0.45))

    # mouth
    upper, lower, opening, teeth, line = geo.mouth_polys(ident, lay)
    lip = ident.lipstick_rgb if lipstick else ident.lip_rgb
    if mouth_open:
        d.polygon(F.pts(opening, inner=True), fill=(70, 20, 28))
        d.polygon(F.pts(teeth, inner=True), fill=(238, 232, 220))
    d.polygon(F.pts(upper, inner=True), fill=_shade(lip, 0.92))
    d.polygon(F.pts(lower, inner=True), fill=lip)
    if not mouth_open:
        d.line(F.pts(line, inner=True), fill=_shade(lip, 0.45), width=F.w(0.008))

    # eyes and brows
    for s in (-1, 1):
        cx = s * ident.eye_spacing
        es = ident.eye_size
        squint = lay.squint
        d.polygon(F.pts(geo.superellipse(cx, lay.eye_y, es, es * 0.5 * squint, n=1.6, k=20), inner=True), fill=(245, 245, 240))
        ir = es * 0.48 * min(1.0, squint + 0.1)
        ic = np.array([cx + params.gaze[0] * es * 0.5, lay.eye_y + params.gaze[1] * es * 0.2])
        d.ellipse(_bbox(F, ic, ir, inner=True), fill=ident.eye_rgb)
        d.ellipse(_bbox(F, ic, ir * 0.45, inner=True), fill=(15, 10, 10))
        lid = geo.superellipse(cx, lay.eye_y, es * 1.02, es * 0.5 * squint, n=1.6, k=20, t0=math.pi, t1=2 * math.pi)
        d.line(F.pts(lid, inner=True), fill=(40, 25, 20), width=F.w(0.012))
        by = lay.eye_y - 0.09
        inner_x, outer_x = s * 0.06, s * (ident.eye_spacing + es * 1.2)
        tilt = ident.brow_angle * 0.15
        bt = ident.brow_thick
        brow = np.array([[inner_x, by + tilt], [s * (ident.eye_spacing - 0.01), by - 0.015], [outer_x, by + 0.01 - tilt * 0.3],
                         [outer_x, by + 0.01 - tilt * 0.3 + bt * 0.5], [s * (ident.eye_spacing - 0.01), by - 0.015 + bt], [inner_x, by + tilt + bt]])
        d.polygon(F.pts(brow, inner=True), fill=ident.brow_rgb)

    # hair on top of the head (after the face, so it frames the forehead)
    _draw_hair_top(d, ident, lay, F)

    # glasses last: they sit in front of everything but bangs
    if glasses:
        _draw_glasses(d, ident, lay, F, style)
    return im, lay, F, out_side, frame


def _bbox(F: geo.Frame, c: np.ndarray, r: float, inner: bool = False):
    (x, y), = F.pts(np.asarray(c)[None], inner=inner)
    rp = r * F.unit
    return [x - rp, y - rp, x + rp, y + rp]


def _draw_hair_top(d: ImageDraw.ImageDraw, ident: Identity, lay: geo.Layout, F: geo.Frame) -> None:
    fw, fh = ident.face_w, ident.face_h
    hair = ident.hair_rgb
    style = ident.hair_style
    if style == "bald":
        for s in (-1, 1):
            d.polygon(F.pts(geo.superellipse(s * (fw - 0.01), lay.eye_y - 0.02, 0.04, 0.11, k=14)), fill=hair)
        return
    thick = 0.035 if style == "short" else 0.06
    t = np.linspace(math.pi, 2 * math.pi, 25)
    outer = np.stack([(fw + thick) * np.cos(t), geo.FACE_CY - 0.06 + (fh * 0.8 + thick) * np.sin(t)], 1)
    hairline = lay.eye_y - (0.25 if style != "bangs" else 0.11)
    xs = np.linspace(fw + 0.01, -fw - 0.01, 13)
    u = xs / (fw + 0.01)
    dip = 0.09 * u**4  # temples: the hairline drops at the sides
    if style == "bangs":
        jag = 0.02 * (np.arange(13) % 2)
        inner = np.stack([xs, hairline + dip + jag], 1)
    else:
        inner = np.stack([xs, hairline + dip + 0.03 * (1 - u**2) * (u > 0) * 0.5], 1)
    side_drop = geo.FACE_CY + (0.05 if style == "short" else 0.12)
    poly = np.concatenate([[[-fw - thick, side_drop]], outer, [[fw + thick, side_drop]], [[fw - 0.02, side_drop]], inner, [[-fw + 0.02, side_drop]]])
    d.polygon(F.pts(poly), fill=hair)
    # a few strands for texture
    for k in range(-3, 4):
        x = k * fw / 4
        d.line(F.pts(np.array([[x * 0.5, geo.FACE_CY - 0.06 - fh * 0.8], [x, hairline - 0.02]])), fill=_shade(hair, 0.75, -5), width=F.w(0.01))


def _draw_glasses(d: ImageDraw.ImageDraw, ident: Identity, lay: geo.Layout, F: geo.Frame, style: Style) -> None:
    frame_rgb = ident.glasses_rgb
    width = F.w(geo.glasses_width(ident, style))
    for s in (-1, 1):
        lens = F.pts(geo.lens(ident, lay, s), inner=True)
        if ident.glasses_tint:
            d.polygon(lens, fill=(30, 30, 40, _alpha(ident.glasses_tint, style.glasses, 245)))
        else:
            d.polygon(lens, fill=(220, 235, 255, _alpha(35, style.glasses, 200)))
        d.line(lens + lens[:1], fill=frame_rgb, width=width, joint="curve")
    bridge, temples = geo.glasses_lines(ident, lay)
    d.line(F.pts(bridge, inner=True), fill=frame_rgb, width=width, joint="curve")
    for tmp in temples:
        # temples run from the lens (moves with the features) to the ear (stays with the head)
        a, = F.pts(tmp[:1], inner=True)
        b, = F.pts(tmp[1:])
        d.line([a, b], fill=frame_rgb, width=width)


def _paste_beard(im: Image.Image, ident: Identity, lay: geo.Layout, F: geo.Frame, params: ImageParams, side: int,
                 style: Style) -> None:
    full, goatee, must = geo.beard_shapes(ident, lay)
    mask = Image.new("L", im.size, 0)
    md = ImageDraw.Draw(mask)
    kind, b = ident.beard_style, style.beard
    if kind in ("full", "stubble"):
        md.polygon(F.pts(full), fill=_alpha(110 if kind == "stubble" else 215, b))
    if kind == "goatee":
        md.polygon(F.pts(goatee, inner=True), fill=_alpha(235, b))
    if kind in ("full", "goatee", "mustache"):
        md.polygon(F.pts(must, inner=True), fill=_alpha(235, b))
    noise = _slice(_noise_bank(side, False), params.noise_offset[::-1], side, side)
    base = np.array(_shade(ident.hair_rgb, 0.8), dtype=np.float32)
    tex = np.clip(base[None, None, :] * (1 + 0.25 * noise[..., None]) - 10 * np.abs(noise[..., None]), 0, 255).astype(np.uint8)
    im.paste(Image.fromarray(tex), (0, 0), mask)


def render_face(ident: Identity, labels, params: ImageParams, size: int,
                style: Style = DEFAULT_STYLE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render one face: (HxWx3 uint8 image before JPEG, {attribute: HxW bool region}).

    `labels` is a 40-vector of 0/1 in CELEBA_ATTRIBUTES order (or a dict of overrides
    on top of all-zero labels, e.g. {"Eyeglasses": 1, "No_Beard": 1}); `style` the benchmark's knobs.
    """
    labels = _as_labels(labels)
    im, lay, F, out_side, frame = _draw_face(ident, labels, params, size, style)
    im = im.reduce(SUPERSAMPLE)
    arr = np.asarray(im, dtype=np.float32)
    yy, xx = np.mgrid[0:out_side, 0:out_side].astype(np.float32) / out_side - 0.5
    light = params.brightness * (1 + params.light_grad * (np.cos(params.light_angle) * xx + np.sin(params.light_angle) * yy))
    noise = _slice(_noise_bank(out_side, False), params.noise_offset, out_side, out_side)
    arr = arr * light[..., None] * np.array(params.tint, dtype=np.float32) + params.noise_sigma * noise[..., None]
    im = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if params.blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(params.blur))
    return np.asarray(im), face_regions(ident, lay, params, out_side, frame, style)


def _as_labels(labels) -> np.ndarray:
    if isinstance(labels, dict):
        vec = np.zeros(len(CELEBA_ATTRIBUTES), dtype=np.int8)
        vec[_IDX["No_Beard"]] = 1
        for name, value in labels.items():
            vec[_IDX[name]] = int(bool(value))
        return vec
    return np.asarray(labels, dtype=np.int8)


def _as_labels(labels) -> np.ndarray:
    if isinstance(labels, dict):
        vec = np.zeros(len(CELEBA_ATTRIBUTES), dtype=np.int8)
        vec[_IDX["No_Beard"]] = 1
        for name, value in labels.items():
            vec[_IDX[name]] = int(bool(value))
        return vec
    return np.asarray(labels, dtype=np.int8)
