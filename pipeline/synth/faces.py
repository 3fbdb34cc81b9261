"""Drawing one synthetic face, and the ground-truth regions of the four edited attributes.

Every shape is a polygon in *face units* (the aligned face box is [-1, 1] x [-1, 1],
y pointing down), mapped to pixels by one affine transform per image (in-plane
rotation, scale, shift) after a small horizontal shift of the inner features (a
yaw-like nuisance). The face is drawn with Pillow at 2x and box-downsampled; lighting,
sensor noise and blur follow in NumPy/Pillow. The attribute regions are drawn from the
same shapes with the same transform at 1x and dilated by the blur's reach, so a region
covers every pixel its attribute can change in that image (tests check this by
rendering a face with and without each attribute).

Rendering is a pure function of (identity, labels, ImageParams): the nuisance
parameters are drawn from the image's own seed in a fixed order, whatever the labels,
so a face can be re-rendered with one attribute flipped and nothing else changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.synth.population import Identity

SUPERSAMPLE = 2
LFW_FRAME = 0.6  # the face box fills the central 60% of an LFW-style image (LFW_CROP_FRACTION)

# Bit of each edited attribute in the region PNGs.
REGION_BITS: dict[str, int] = {"Eyeglasses": 0, "Mouth_Slightly_Open": 1, "Smiling": 2, "No_Beard": 3}

_IDX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}

FACE_CY = 0.05  # vertical centre of the face in face units
ZOOM = 1.17  # face units -> half the face box (the aligned crop is filled by the face)
GAP_OPEN, GAP_OPEN_SMILING, CORNER_LIFT = 0.075, 0.09, 0.035


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


def sample_params(seed: np.random.SeedSequence | int, domain: str, blurry: bool, size: int) -> ImageParams:
    """Draw an image's nuisance factors; the draw order never depends on `blurry`'s value."""
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
    return ImageParams(
        domain=domain, rotation=rotation, scale=scale, shift=shift,
        yaw=(r[4] * 2 - 1) * 0.035,
        bg_colours=cols, bg_angle=float(r[5] * 2 * math.pi),
        bg_offset=(int(r[14] * 10_000), int(r[15] * 10_000)),
        brightness=brightness, light_grad=light_grad, light_angle=float(r[9] * 2 * math.pi),
        tint=tint, noise_sigma=1.5 + 3.0 * r[16], noise_offset=(int(r[17] * 10_000), int(r[18] * 10_000)),
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


# ---------------------------------------------------------------- geometry helpers

def _superellipse(cx, cy, rx, ry, n=2.0, k=28, t0=0.0, t1=2 * math.pi):
    t = np.linspace(t0, t1, k, endpoint=(t1 - t0) < 2 * math.pi - 1e-9)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / n
    return np.stack([cx + rx * np.sign(c) * np.abs(c) ** e, cy + ry * np.sign(s) * np.abs(s) ** e], 1)


def _face_outline(ident: Identity, k: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, k, endpoint=False)
    s = np.sin(t)
    narrow = 1 - (1 - ident.jaw) * np.maximum(0, s) ** 1.5
    return np.stack([ident.face_w * np.cos(t) * narrow, FACE_CY + ident.face_h * s], 1)


class _Frame:
    """Maps face-unit points to pixel coordinates for one image at one resolution."""

    def __init__(self, params: ImageParams, side: int, frame: float):
        half = side * frame / 2 * ZOOM
        c, s = math.cos(params.rotation), math.sin(params.rotation)
        a = params.scale * half
        self.m = np.array([[a * c, -a * s], [a * s, a * c]])
        self.t = np.array([side / 2 + params.shift[0] * half, side / 2 + params.shift[1] * half])
        self.unit = a  # pixels per face unit
        self.yaw = params.yaw

    def pts(self, p: np.ndarray, inner: bool = False) -> list[tuple[float, float]]:
        p = np.asarray(p, dtype=np.float64)
        if inner:
            p = p + np.array([self.yaw, 0.0])
        q = p @ self.m.T + self.t
        return [tuple(v) for v in q.tolist()]

    def w(self, width_units: float) -> int:
        return max(1, int(round(width_units * self.unit)))


# ---------------------------------------------------------------- feature layout

@dataclass(frozen=True)
class _Layout:
    eye_y: float
    nose_tip: float
    mouth_y: float
    mouth_hw: float
    corner: float
    gap: float
    lens_w: float
    lens_h: float
    chin_y: float
    beard_cut: float


def _layout(ident: Identity, smiling: bool, mouth_open: bool) -> _Layout:
    eye_y = FACE_CY - 0.13
    nose_tip = eye_y + ident.nose_len
    mouth_y = nose_tip + 0.12
    lens_w = min(ident.eye_size * 1.5 + 0.025, ident.eye_spacing - 0.025)
    lens_h = lens_w * {"round": 0.85, "rect": 0.68, "aviator": 0.9}[ident.glasses_shape]
    return _Layout(
        eye_y=eye_y, nose_tip=nose_tip, mouth_y=mouth_y,
        mouth_hw=ident.mouth_w * (1.2 if smiling else 1.0),
        corner=CORNER_LIFT if smiling else 0.0,
        gap=(GAP_OPEN_SMILING if smiling else GAP_OPEN) if mouth_open else 0.0,
        lens_w=lens_w, lens_h=lens_h,
        chin_y=FACE_CY + ident.face_h,
        beard_cut=nose_tip - 0.02,
    )


def _mouth_polys(ident: Identity, lay: _Layout):
    x = np.linspace(-1, 1, 15)
    w = lay.mouth_hw
    env = np.sqrt(np.clip(1 - x**2, 0, 1))
    mid = lay.mouth_y - lay.corner * x**2 + lay.corner * 0.3
    top = mid - ident.lip_thick * 0.9 * env ** 0.7 + 0.008 * np.exp(-(x / 0.15) ** 2)
    gap = mid + lay.gap * env
    bottom = gap + ident.lip_thick * 1.15 * env ** 0.8
    xs = x * w
    upper = np.concatenate([np.stack([xs, top], 1), np.stack([xs[::-1], mid[::-1]], 1)])
    lower = np.concatenate([np.stack([xs, gap], 1), np.stack([xs[::-1], bottom[::-1]], 1)])
    opening = np.concatenate([np.stack([xs, mid], 1), np.stack([xs[::-1], gap[::-1]], 1)])
    teeth_bottom = mid + lay.gap * 0.45 * env
    inner = np.abs(x) < 0.75
    teeth = np.concatenate([np.stack([xs[inner], mid[inner]], 1), np.stack([xs[inner][::-1], teeth_bottom[inner][::-1]], 1)])
    line = np.stack([xs, mid], 1)
    return upper, lower, opening, teeth, line


def _lens(ident: Identity, lay: _Layout, side: int) -> np.ndarray:
    cx = side * ident.eye_spacing
    if ident.glasses_shape == "rect":
        return _superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=4.5)
    if ident.glasses_shape == "aviator":
        p = _superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=2.6)
        p[:, 1] += np.where(p[:, 1] > lay.eye_y, 0.25, 0.0) * (p[:, 1] - lay.eye_y) * (1 - side * (p[:, 0] - cx) / lay.lens_w) * 0.6
        return p
    return _superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=2.0)


def _glasses_lines(ident: Identity, lay: _Layout):
    bridge_y = lay.eye_y - lay.lens_h * 0.25
    inner = ident.eye_spacing - lay.lens_w
    bridge = np.array([[-inner, bridge_y], [0, bridge_y - 0.015], [inner, bridge_y]])
    outer = ident.eye_spacing + lay.lens_w
    temples = [np.array([[side * outer, bridge_y], [side * (ident.face_w * 1.0 + 0.005), bridge_y + 0.01]]) for side in (-1, 1)]
    return bridge, temples


def _beard_shapes(ident: Identity, lay: _Layout, ss: _Frame | None = None):
    """(full-beard polygon, goatee polygon, moustache polygon) in face units."""
    out = _face_outline(ident, 48)
    low = out[out[:, 1] >= lay.beard_cut]
    low = low[np.argsort(np.arctan2(low[:, 1] - FACE_CY, low[:, 0]))]  # left->right via the chin
    low = low[::-1]  # from the right side round the chin to the left
    # close along the beard line, hugging below the nose
    full = np.concatenate([low, np.array([[-ident.nose_w - 0.05, lay.beard_cut + 0.03], [ident.nose_w + 0.05, lay.beard_cut + 0.03]])])
    goatee = _superellipse(0, lay.chin_y - 0.1, max(0.1, ident.mouth_w * 0.95), 0.13, n=2.2)
    mw = ident.mouth_w * 1.05 + 0.02
    y0 = lay.nose_tip + 0.035
    y1 = lay.mouth_y - ident.lip_thick * 0.6
    must = np.array([[-mw, y1 + 0.02], [-mw * 0.7, y0 + 0.01], [0, y0], [mw * 0.7, y0 + 0.01], [mw, y1 + 0.02], [0, y1 - 0.005]])
    return full, goatee, must


def _region_mouth(ident: Identity, lay: _Layout) -> np.ndarray:
    """Covers the lips in every smile / open state of this face."""
    hw = ident.mouth_w * 1.2 + ident.lip_thick * 0.5 + 0.04
    top = lay.mouth_y - CORNER_LIFT - ident.lip_thick - 0.03
    bottom = lay.mouth_y + CORNER_LIFT * 0.3 + GAP_OPEN_SMILING + ident.lip_thick * 1.15 + 0.03
    return _superellipse(0, (top + bottom) / 2, hw, (bottom - top) / 2, n=4.0)


def _cheeks(ident: Identity, lay: _Layout):
    cy = lay.eye_y + 0.2
    return [_superellipse(s * (ident.eye_spacing + 0.03), cy, 0.09, 0.065) for s in (-1, 1)]


def _nasolabial(ident: Identity, lay: _Layout):
    out = []
    for s in (-1, 1):
        x0 = s * (ident.nose_w / 2 + 0.045)
        x1 = s * (ident.mouth_w * 1.2 + 0.03)
        out.append(np.array([[x0, lay.nose_tip - 0.01], [(x0 + x1) / 2 + s * 0.02, (lay.nose_tip + lay.mouth_y) / 2],
                             [x1, lay.mouth_y + 0.01]]))
    return out


def _region_smile(ident: Identity, lay: _Layout) -> list[np.ndarray]:
    hw = ident.mouth_w * 1.2 + 0.09
    band = _superellipse(0, (lay.nose_tip + lay.mouth_y) / 2 + 0.02, hw,
                         (lay.mouth_y - lay.nose_tip) / 2 + 0.11, n=4.0)
    cheeks = [_superellipse(s * (ident.eye_spacing + 0.03), lay.eye_y + 0.2, 0.11, 0.085) for s in (-1, 1)]
    return [band, _region_mouth(ident, lay)] + cheeks


# ---------------------------------------------------------------- drawing

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


def _draw_face(ident: Identity, labels: np.ndarray, params: ImageParams, size: int):
    domain = params.domain
    out_side = canvas_side(size, domain)
    frame = 1.0 if domain == "celeba" else LFW_FRAME
    side = out_side * SUPERSAMPLE
    F = _Frame(params, side, frame)

    smiling = bool(labels[_IDX["Smiling"]])
    mouth_open = bool(labels[_IDX["Mouth_Slightly_Open"]])
    glasses = bool(labels[_IDX["Eyeglasses"]])
    beard = not bool(labels[_IDX["No_Beard"]])
    lipstick = bool(labels[_IDX["Wearing_Lipstick"]])
    lay = _layout(ident, smiling, mouth_open)

    im = _background(params, side)
    d = ImageDraw.Draw(im, "RGBA")
    skin = ident.skin
    hair = ident.hair_rgb
    fw, fh = ident.face_w, ident.face_h

    # shoulders, neck, back hair, ears
    d.polygon(F.pts(np.array([[-1.6, 1.6], [-1.3, 0.98], [-0.3, 0.88], [0.3, 0.88], [1.3, 0.98], [1.6, 1.6]])), fill=params.shirt)
    d.polygon(F.pts(np.array([[-fw * 0.48, FACE_CY + fh * 0.5], [fw * 0.48, FACE_CY + fh * 0.5], [fw * 0.5, 0.95], [-fw * 0.5, 0.95]])), fill=_shade(skin, 0.86))
    style = ident.hair_style
    if style in ("long", "bob", "bangs") and not (ident.male and style == "bangs"):
        bottom = FACE_CY + fh + (0.28 if style == "long" or (style == "bangs" and not ident.male) else 0.02)
        top = _superellipse(0, FACE_CY - 0.1, fw + 0.12, fh * 0.78 + 0.1, k=24, t0=math.pi, t1=2 * math.pi)
        back = np.concatenate([top, [[fw + 0.14, bottom], [-fw - 0.14, bottom]]])
        d.polygon(F.pts(back), fill=_shade(hair, 0.85))
    for s in (-1, 1):
        d.polygon(F.pts(_superellipse(s * fw * 0.97, lay.eye_y + 0.07, ident.ear_size * 0.5, ident.ear_size, k=16)), fill=_shade(skin, 0.93))
    d.polygon(F.pts(_face_outline(ident)), fill=skin)

    # cheeks (smile lifts and flushes them), freckles, mole
    if smiling:
        for c in _cheeks(ident, lay):
            d.polygon(F.pts(c, inner=True), fill=(255, 235, 225, 70))
            d.polygon(F.pts(c + np.array([0, 0.03]), inner=True), fill=(200, 80, 80, 40))
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
        _paste_beard(im, ident, lay, F, params, side)
        d = ImageDraw.Draw(im, "RGBA")

    if smiling:
        for line in _nasolabial(ident, lay):
            d.line(F.pts(line, inner=True), fill=_shade(skin, 0.72) + (200,), width=F.w(0.014), joint="curve")

    # nose
    nt = lay.nose_tip
    d.line(F.pts(np.array([[0.02, lay.eye_y + 0.06], [0.035, nt - 0.03], [ident.nose_w * 0.3, nt]]), inner=True), fill=_shade(skin, 0.8), width=F.w(0.012))
    d.polygon(F.pts(_superellipse(0, nt, ident.nose_w * 0.75, 0.035, k=16), inner=True), fill=_shade(skin, 0.92))
    for s in (-1, 1):
        d.polygon(F.pts(_superellipse(s * ident.nose_w * 0.45, nt + 0.01, ident.nose_w * 0.2, 0.012, k=12), inner=True), fill=_shade(skin, 0.45))

    # mouth
    upper, lower, opening, teeth, line = _mouth_polys(ident, lay)
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
        squint = 0.8 if smiling else 1.0
        d.polygon(F.pts(_superellipse(cx, lay.eye_y, es, es * 0.5 * squint, n=1.6, k=20), inner=True), fill=(245, 245, 240))
        ir = es * 0.48 * min(1.0, squint + 0.1)
        ic = np.array([cx + params.gaze[0] * es * 0.5, lay.eye_y + params.gaze[1] * es * 0.2])
        d.ellipse(_bbox(F, ic, ir, inner=True), fill=ident.eye_rgb)
        d.ellipse(_bbox(F, ic, ir * 0.45, inner=True), fill=(15, 10, 10))
        lid = _superellipse(cx, lay.eye_y, es * 1.02, es * 0.5 * squint, n=1.6, k=20, t0=math.pi, t1=2 * math.pi)
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
        _draw_glasses(d, ident, lay, F)
    return im, lay, F, out_side, frame


def _bbox(F: _Frame, c: np.ndarray, r: float, inner: bool = False):
    (x, y), = F.pts(np.asarray(c)[None], inner=inner)
    rp = r * F.unit
    return [x - rp, y - rp, x + rp, y + rp]


def _draw_hair_top(d: ImageDraw.ImageDraw, ident: Identity, lay: _Layout, F: _Frame) -> None:
    fw, fh = ident.face_w, ident.face_h
    hair = ident.hair_rgb
    style = ident.hair_style
    if style == "bald":
        for s in (-1, 1):
            d.polygon(F.pts(_superellipse(s * (fw - 0.01), lay.eye_y - 0.02, 0.04, 0.11, k=14)), fill=hair)
        return
    thick = 0.035 if style == "short" else 0.06
    t = np.linspace(math.pi, 2 * math.pi, 25)
    outer = np.stack([(fw + thick) * np.cos(t), FACE_CY - 0.06 + (fh * 0.8 + thick) * np.sin(t)], 1)
    hairline = lay.eye_y - (0.25 if style != "bangs" else 0.11)
    xs = np.linspace(fw + 0.01, -fw - 0.01, 13)
    u = xs / (fw + 0.01)
    dip = 0.09 * u**4  # temples: the hairline drops at the sides
    if style == "bangs":
        jag = 0.02 * (np.arange(13) % 2)
        inner = np.stack([xs, hairline + dip + jag], 1)
    else:
        inner = np.stack([xs, hairline + dip + 0.03 * (1 - u**2) * (u > 0) * 0.5], 1)
    side_drop = FACE_CY + (0.05 if style == "short" else 0.12)
    poly = np.concatenate([[[-fw - thick, side_drop]], outer, [[fw + thick, side_drop]], [[fw - 0.02, side_drop]], inner, [[-fw + 0.02, side_drop]]])
    d.polygon(F.pts(poly), fill=hair)
    # a few strands for texture
    for k in range(-3, 4):
        x = k * fw / 4
        d.line(F.pts(np.array([[x * 0.5, FACE_CY - 0.06 - fh * 0.8], [x, hairline - 0.02]])), fill=_shade(hair, 0.75, -5), width=F.w(0.01))


def _draw_glasses(d: ImageDraw.ImageDraw, ident: Identity, lay: _Layout, F: _Frame) -> None:
    frame_rgb = ident.glasses_rgb
    width = F.w(ident.glasses_thick)
    for s in (-1, 1):
        lens = F.pts(_lens(ident, lay, s), inner=True)
        if ident.glasses_tint:
            d.polygon(lens, fill=(30, 30, 40, ident.glasses_tint))
        else:
            d.polygon(lens, fill=(220, 235, 255, 35))
        d.line(lens + lens[:1], fill=frame_rgb, width=width, joint="curve")
    bridge, temples = _glasses_lines(ident, lay)
    d.line(F.pts(bridge, inner=True), fill=frame_rgb, width=width, joint="curve")
    for tmp in temples:
        # temples run from the lens (moves with the features) to the ear (stays with the head)
        a, = F.pts(tmp[:1], inner=True)
        b, = F.pts(tmp[1:])
        d.line([a, b], fill=frame_rgb, width=width)


def _paste_beard(im: Image.Image, ident: Identity, lay: _Layout, F: _Frame, params: ImageParams, side: int) -> None:
    full, goatee, must = _beard_shapes(ident, lay)
    mask = Image.new("L", im.size, 0)
    md = ImageDraw.Draw(mask)
    style = ident.beard_style
    if style in ("full", "stubble"):
        md.polygon(F.pts(full), fill=110 if style == "stubble" else 215)
    if style == "goatee":
        md.polygon(F.pts(goatee, inner=True), fill=235)
    if style in ("full", "goatee", "mustache"):
        md.polygon(F.pts(must, inner=True), fill=235)
    noise = _slice(_noise_bank(side, False), params.noise_offset[::-1], side, side)
    base = np.array(_shade(ident.hair_rgb, 0.8), dtype=np.float32)
    tex = np.clip(base[None, None, :] * (1 + 0.25 * noise[..., None]) - 10 * np.abs(noise[..., None]), 0, 255).astype(np.uint8)
    im.paste(Image.fromarray(tex), (0, 0), mask)


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


def _regions(ident: Identity, lay_now: _Layout, params: ImageParams, size: int) -> dict[str, np.ndarray]:
    """Per-attribute boolean masks at output resolution (see module docstring)."""
    out_side = canvas_side(size, params.domain)
    frame = 1.0 if params.domain == "celeba" else LFW_FRAME
    F = _Frame(params, out_side, frame)
    reach = 1 + int(math.ceil(3 * params.blur))
    masks: dict[str, np.ndarray] = {}

    def new():
        m = Image.new("L", (out_side, out_side), 0)
        return m, ImageDraw.Draw(m)

    # eyeglasses: lenses, frames, bridge and temples (with the frame's width), for the face's smile state
    m, d = new()
    w = F.w(ident.glasses_thick) + 1
    for s in (-1, 1):
        lens = F.pts(_lens(ident, lay_now, s), inner=True)
        d.polygon(lens, fill=255)
        d.line(lens + lens[:1], fill=255, width=w, joint="curve")
    bridge, temples = _glasses_lines(ident, lay_now)
    d.line(F.pts(bridge, inner=True), fill=255, width=w, joint="curve")
    for tmp in temples:
        a, = F.pts(tmp[:1], inner=True)
        b, = F.pts(tmp[1:])
        d.line([a, b], fill=255, width=w)
    masks["Eyeglasses"] = m

    # mouth: the lips and opening in every state
    m, d = new()
    d.polygon(F.pts(_region_mouth(ident, lay_now), inner=True), fill=255)
    masks["Mouth_Slightly_Open"] = m

    # smiling: mouth, nasolabial band and cheeks
    m, d = new()
    for poly in _region_smile(ident, lay_now):
        d.polygon(F.pts(poly, inner=True), fill=255)
    # the smile squints the eyes a little
    for s in (-1, 1):
        d.polygon(F.pts(_superellipse(s * ident.eye_spacing, lay_now.eye_y, ident.eye_size + 0.02, ident.eye_size * 0.5 + 0.02), inner=True), fill=255)
    masks["Smiling"] = m

    # beard: jaw, chin, upper lip, for every beard style (computed for both smile states)
    m, d = new()
    for smile in (False, True):
        lay = _layout(ident, smile, False)
        full, goatee, must = _beard_shapes(ident, lay)
        d.polygon(F.pts(full), fill=255)
        d.polygon(F.pts(goatee, inner=True), fill=255)
        d.polygon(F.pts(must, inner=True), fill=255)
    masks["No_Beard"] = m
    packed = encode_regions({k: np.asarray(v) > 0 for k, v in masks.items()})
    return decode_regions(_or_dilate(packed, reach))


def render_face(ident: Identity, labels, params: ImageParams, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render one face: (HxWx3 uint8 image before JPEG, {attribute: HxW bool region}).

    `labels` is a 40-vector of 0/1 in CELEBA_ATTRIBUTES order (or a dict of overrides
    on top of all-zero labels, e.g. {"Eyeglasses": 1, "No_Beard": 1}).
    """
    labels = _as_labels(labels)
    im, lay, F, out_side, _ = _draw_face(ident, labels, params, size)
    im = im.reduce(SUPERSAMPLE)
    arr = np.asarray(im, dtype=np.float32)
    yy, xx = np.mgrid[0:out_side, 0:out_side].astype(np.float32) / out_side - 0.5
    light = params.brightness * (1 + params.light_grad * (np.cos(params.light_angle) * xx + np.sin(params.light_angle) * yy))
    noise = _slice(_noise_bank(out_side, False), params.noise_offset, out_side, out_side)
    arr = arr * light[..., None] * np.array(params.tint, dtype=np.float32) + params.noise_sigma * noise[..., None]
    im = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if params.blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(params.blur))
    return np.asarray(im), _regions(ident, lay, params, size)


def _as_labels(labels) -> np.ndarray:
    if isinstance(labels, dict):
        vec = np.zeros(len(CELEBA_ATTRIBUTES), dtype=np.int8)
        vec[_IDX["No_Beard"]] = 1
        for name, value in labels.items():
            vec[_IDX[name]] = int(bool(value))
        return vec
    return np.asarray(labels, dtype=np.int8)


def encode_regions(regions: dict[str, np.ndarray]) -> np.ndarray:
    """Pack the four masks into one uint8 image (bit k = REGION_BITS' attribute k)."""
    out = None
    for name, bit in REGION_BITS.items():
        layer = regions[name].astype(np.uint8) << bit
        out = layer if out is None else out | layer
    return out


def decode_regions(packed: np.ndarray) -> dict[str, np.ndarray]:
    return {name: (packed >> bit) & 1 > 0 for name, bit in REGION_BITS.items()}
