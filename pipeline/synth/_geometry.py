"""Shapes of a synthetic face in *face units* (the aligned face box is [-1, 1] x [-1, 1], y down),
and the frame that maps them to the pixels of one image. Used by the drawing (`faces.py`) and by
the ground-truth regions (`regions.py`), so a region is built from the very shapes that are drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.synth.population import Identity
from pipeline.synth.style import Style

FACE_CY = 0.05  # vertical centre of the face in face units
ZOOM = 1.17  # face units -> half the face box (the aligned crop is filled by the face)
GAP_OPEN, GAP_OPEN_SMILING, CORNER_LIFT = 0.075, 0.09, 0.035
SMILE_WIDEN = 1.2  # a smiling mouth is this much wider (at Style.smile = 1)
SQUINT = 0.8  # a smile narrows the eyes to this fraction of their height (at Style.smile = 1)
BEARD_RISE = 0.06  # how much higher up the cheeks a full beard reaches per unit of Style.beard above 1
JAW_DROP = 0.03  # how far an open mouth lowers the chin per unit of Style.mouth above 1 (none at 1)


def superellipse(cx, cy, rx, ry, n=2.0, k=28, t0=0.0, t1=2 * math.pi):
    t = np.linspace(t0, t1, k, endpoint=(t1 - t0) < 2 * math.pi - 1e-9)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / n
    return np.stack([cx + rx * np.sign(c) * np.abs(c) ** e, cy + ry * np.sign(s) * np.abs(s) ** e], 1)


def face_outline(ident: Identity, k: int = 40, jaw_drop: float = 0.0) -> np.ndarray:
    """The face's outline; `jaw_drop` lowers the part below the mouth's hinge (most at the chin), as an opening
    mouth does."""
    t = np.linspace(0, 2 * math.pi, k, endpoint=False)
    s = np.sin(t)
    narrow = 1 - (1 - ident.jaw) * np.maximum(0, s) ** 1.5
    y = FACE_CY + ident.face_h * s
    if jaw_drop:
        hinge, chin = jaw_hinge(ident), FACE_CY + ident.face_h
        y = y + jaw_drop * np.clip((y - hinge) / (chin - hinge), 0, 1)
    return np.stack([ident.face_w * np.cos(t) * narrow, y], 1)


def jaw_hinge(ident: Identity) -> float:
    """Where the jaw turns when the mouth opens: just above the mouth corners (face units)."""
    return FACE_CY - 0.13 + ident.nose_len + 0.12 - 0.02


class Frame:
    """Maps face-unit points to pixel coordinates for one image at one resolution."""

    def __init__(self, params, side: int, frame: float):
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
class Layout:
    """Where a face's features sit for one (smile, mouth) state, and the style's attribute geometry."""

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
    squint: float  # eye height factor of this state (1 = not smiling)
    jaw_drop: float  # how far this state's open mouth lowers the chin (0 when closed, or at Style.mouth <= 1)
    # the style's extremes, which a region must cover whatever the state
    smile_widen: float
    corner_lift: float
    gap_smiling: float


def layout(ident: Identity, smiling: bool, mouth_open: bool, style: Style) -> Layout:
    s, m = style.smile, style.mouth
    widen = SMILE_WIDEN if s == 1.0 else 1.0 + (SMILE_WIDEN - 1.0) * s
    lift = CORNER_LIFT * s
    squint = SQUINT if s == 1.0 else max(0.35, 1.0 - (1.0 - SQUINT) * s)
    gap_smiling = GAP_OPEN_SMILING * m
    jaw_drop = JAW_DROP * (m - 1.0) if mouth_open and m > 1.0 else 0.0
    eye_y = FACE_CY - 0.13
    nose_tip = eye_y + ident.nose_len
    mouth_y = nose_tip + 0.12
    lens_w = min(ident.eye_size * 1.5 + 0.025, ident.eye_spacing - 0.025)
    lens_h = lens_w * {"round": 0.85, "rect": 0.68, "aviator": 0.9}[ident.glasses_shape]
    beard_cut = nose_tip - 0.02
    if style.beard != 1.0:  # a stronger beard reaches up the cheeks (never above the eyes' lower edge)
        beard_cut = max(eye_y + 0.12, beard_cut - BEARD_RISE * (style.beard - 1.0))
    return Layout(
        eye_y=eye_y, nose_tip=nose_tip, mouth_y=mouth_y,
        mouth_hw=ident.mouth_w * (widen if smiling else 1.0),
        corner=lift if smiling else 0.0,
        gap=(gap_smiling if smiling else GAP_OPEN * m) if mouth_open else 0.0,
        lens_w=lens_w, lens_h=lens_h,
        chin_y=FACE_CY + ident.face_h + jaw_drop,
        beard_cut=beard_cut,
        squint=squint if smiling else 1.0, jaw_drop=jaw_drop,
        smile_widen=widen, corner_lift=lift, gap_smiling=gap_smiling,
    )


def mouth_polys(ident: Identity, lay: Layout):
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


def lens(ident: Identity, lay: Layout, side: int) -> np.ndarray:
    cx = side * ident.eye_spacing
    if ident.glasses_shape == "rect":
        return superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=4.5)
    if ident.glasses_shape == "aviator":
        p = superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=2.6)
        p[:, 1] += np.where(p[:, 1] > lay.eye_y, 0.25, 0.0) * (p[:, 1] - lay.eye_y) * (1 - side * (p[:, 0] - cx) / lay.lens_w) * 0.6
        return p
    return superellipse(cx, lay.eye_y, lay.lens_w, lay.lens_h, n=2.0)


def glasses_lines(ident: Identity, lay: Layout):
    bridge_y = lay.eye_y - lay.lens_h * 0.25
    inner = ident.eye_spacing - lay.lens_w
    bridge = np.array([[-inner, bridge_y], [0, bridge_y - 0.015], [inner, bridge_y]])
    outer = ident.eye_spacing + lay.lens_w
    temples = [np.array([[side * outer, bridge_y], [side * (ident.face_w * 1.0 + 0.005), bridge_y + 0.01]]) for side in (-1, 1)]
    return bridge, temples


def glasses_width(ident: Identity, style: Style) -> float:
    """Frame width in face units."""
    return ident.glasses_thick if style.glasses == 1.0 else ident.glasses_thick * style.glasses


def beard_shapes(ident: Identity, lay: Layout):
    """(full-beard polygon, goatee polygon, moustache polygon) in face units."""
    out = face_outline(ident, 48, lay.jaw_drop)
    low = out[out[:, 1] >= lay.beard_cut]
    low = low[np.argsort(np.arctan2(low[:, 1] - FACE_CY, low[:, 0]))]  # left->right via the chin
    low = low[::-1]  # from the right side round the chin to the left
    # close along the beard line, hugging below the nose
    full = np.concatenate([low, np.array([[-ident.nose_w - 0.05, lay.beard_cut + 0.03], [ident.nose_w + 0.05, lay.beard_cut + 0.03]])])
    goatee = superellipse(0, lay.chin_y - 0.1, max(0.1, ident.mouth_w * 0.95), 0.13, n=2.2)
    mw = ident.mouth_w * 1.05 + 0.02
    y0 = lay.nose_tip + 0.035
    y1 = lay.mouth_y - ident.lip_thick * 0.6
    must = np.array([[-mw, y1 + 0.02], [-mw * 0.7, y0 + 0.01], [0, y0], [mw * 0.7, y0 + 0.01], [mw, y1 + 0.02], [0, y1 - 0.005]])
    return full, goatee, must


def cheeks(ident: Identity, lay: Layout):
    cy = lay.eye_y + 0.2
    return [superellipse(s * (ident.eye_spacing + 0.03), cy, 0.09, 0.065) for s in (-1, 1)]


def nasolabial(ident: Identity, lay: Layout):
    out = []
    for s in (-1, 1):
        x0 = s * (ident.nose_w / 2 + 0.045)
        x1 = s * (ident.mouth_w * lay.smile_widen + 0.03)
        out.append(np.array([[x0, lay.nose_tip - 0.01], [(x0 + x1) / 2 + s * 0.02, (lay.nose_tip + lay.mouth_y) / 2],
                             [x1, lay.mouth_y + 0.01]]))
    return out


def region_mouth(ident: Identity, lay: Layout) -> np.ndarray:
    """Covers the lips in every smile / open state of this face."""
    hw = ident.mouth_w * max(lay.smile_widen, 1.0) + ident.lip_thick * 0.5 + 0.04
    top = lay.mouth_y - lay.corner_lift - ident.lip_thick - 0.03
    bottom = lay.mouth_y + lay.corner_lift * 0.3 + lay.gap_smiling + ident.lip_thick * 1.15 + 0.03
    return superellipse(0, (top + bottom) / 2, hw, (bottom - top) / 2, n=4.0)


def region_jaw(ident: Identity, lay: Layout, style: Style) -> np.ndarray | None:
    """Where an open mouth's jaw drop changes the face: the lower face below the mouth, with the chin at its
    lowest (None when this benchmark's open mouth does not drop the jaw)."""
    drop = JAW_DROP * (style.mouth - 1.0)
    if drop <= 0:
        return None
    hinge = jaw_hinge(ident)
    low = face_outline(ident, 96, drop)
    low = low[low[:, 1] >= hinge]
    low = low[np.argsort(np.arctan2(low[:, 1] - FACE_CY, low[:, 0]))]  # right -> chin -> left
    return np.concatenate([low, np.array([[-ident.face_w * 1.05, hinge], [ident.face_w * 1.05, hinge]])])


def region_smile(ident: Identity, lay: Layout) -> list[np.ndarray]:
    hw = ident.mouth_w * max(lay.smile_widen, 1.0) + 0.09
    band = superellipse(0, (lay.nose_tip + lay.mouth_y) / 2 + 0.02, hw,
                        (lay.mouth_y - lay.nose_tip) / 2 + 0.11, n=4.0)
    cheek_regions = [superellipse(s * (ident.eye_spacing + 0.03), lay.eye_y + 0.2, 0.11, 0.085) for s in (-1, 1)]
    return [band, region_mouth(ident, lay)] + cheek_regions
