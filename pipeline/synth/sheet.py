"""A contact sheet of synthetic faces (docs/synthetic_samples.png): one identity per row,
the four edited attributes varying across the columns, so a person can check them by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.synth.faces import render_face, sample_params
from pipeline.synth.population import sample_person
from pipeline.synth.style import DEFAULT_STYLE, Style

COLUMNS: tuple[tuple[str, dict], ...] = (
    ("plain", {}), ("smiling", {"Smiling": 1}), ("mouth open", {"Mouth_Slightly_Open": 1}),
    ("smile+open", {"Smiling": 1, "Mouth_Slightly_Open": 1}), ("glasses", {"Eyeglasses": 1}),
    ("beard", {"No_Beard": 0}), ("beard+smile", {"No_Beard": 0, "Smiling": 1}),
    ("lfw domain", {"Eyeglasses": 1, "Mouth_Slightly_Open": 1}),
)


def contact_sheet(path: str | Path, *, size: int = 128, rows: int = 6, seed: int = 7, style: Style = DEFAULT_STYLE) -> Path:
    """Write rows x 8 faces (the last column in the LFW domain, centre-cropped) with a label strip."""
    label_h = 14
    sheet = Image.new("RGB", (len(COLUMNS) * size, rows * size + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(COLUMNS):
        draw.text((c * size + 4, 2), title, fill=(0, 0, 0))
    for r in range(rows):
        person = sample_person(np.random.default_rng([seed, r]), r + 1, style.identity_spread)
        for c, (title, overrides) in enumerate(COLUMNS):
            labels = {"Wearing_Lipstick": int(not person.identity.male), **overrides}
            domain = "lfw" if title == "lfw domain" else "celeba"
            params = sample_params(np.random.SeedSequence([seed, r, c]), domain, False, size, style.nuisance)
            img, _ = render_face(person.identity, labels, params, size, style)
            tile = Image.fromarray(img)
            if domain == "lfw":  # what the project's LFW reader sees: the central 60%, resized
                side = round(tile.width * 0.6)
                off = (tile.width - side) // 2
                tile = tile.crop((off, off, off + side, off + side)).resize((size, size), Image.BICUBIC)
            sheet.paste(tile, (c * size, r * size + label_h))
    path = Path(path)
    sheet.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path
