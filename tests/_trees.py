"""Tiny CelebA- and LFW-format trees on disk, written with PIL, for the reader tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.celeba import ATTR_FILE, IDENTITY_FILE, IMAGE_DIR, PARTITION_FILE, CelebARecord
from pipeline.lfw import pair_path


def jpeg_bytes(size: tuple[int, int] = (178, 218), seed: int = 0, mode: str = "RGB", quality: int = 90) -> bytes:
    """A small noise JPEG of `size` (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def default_attributes(index: int) -> tuple[int, ...]:
    """A deterministic 0/1 vector per image: attribute k is on when (index + k) % 3 == 0."""
    return tuple(int((index + k) % 3 == 0) for k in range(len(CELEBA_ATTRIBUTES)))


def make_celeba_tree(
    root: Path,
    identities: dict[int, int],
    *,
    size: tuple[int, int] = (178, 218),
    header_in_identity: bool = False,
    partitions: dict[int, int] | None = None,
    column_order: list[str] | None = None,
    separator: str = "two",
) -> list[CelebARecord]:
    """Write img_align_celeba/ and the three files; returns the records (sorted by image id).

    `identities`: identity -> number of images, images numbered from 000001 in identity order.
    `partitions`: identity -> 0/1/2 (default: all 0). `column_order`: the attribute names as
    line 2 should list them (default: the official order). `separator`: "two" writes values as
    the official file does (two spaces before 1, one before -1), "one" single spaces.
    """
    root = Path(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    names = list(column_order or CELEBA_ATTRIBUTES)
    records = []
    index = 0
    for identity, count in identities.items():
        for _ in range(count):
            index += 1
            image_id = f"{index:06d}.jpg"
            attrs = default_attributes(index)
            part = (partitions or {}).get(identity, 0)
            records.append(CelebARecord(image_id, identity, part, attrs))
            (root / IMAGE_DIR / image_id).write_bytes(jpeg_bytes(size, seed=index))
    attr_lines = [str(len(records)), " ".join(names)]
    for r in records:
        by_name = dict(zip(CELEBA_ATTRIBUTES, r.attributes))
        values = [2 * by_name[n] - 1 for n in names]
        if separator == "two":
            attr_lines.append(r.image_id + "".join(f" {v:2d}" for v in values))
        else:
            attr_lines.append(r.image_id + "".join(f" {v}" for v in values))
    ident_lines = (["image_id identity"] if header_in_identity else []) + [f"{r.image_id} {r.identity}" for r in records]
    part_lines = [f"{r.image_id} {r.partition}" for r in records]
    for name, lines in ((ATTR_FILE, attr_lines), (IDENTITY_FILE, ident_lines), (PARTITION_FILE, part_lines)):
        (root / name).write_text("\n".join(lines) + "\n")
    return sorted(records, key=lambda r: r.image_id)


def edit_line(path: Path, lineno: int, new: str | None) -> None:
    """Replace (or with None delete) 1-based line `lineno` of a text file."""
    lines = Path(path).read_text().splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    Path(path).write_text("\n".join(lines) + "\n")


def pairs_text(folds: list[tuple[list[tuple[str, int, int]], list[tuple[str, int, str, int]]]], header: str | None = None) -> str:
    """pairs.txt content: '<folds>\\t<P>' then per fold P matched and P mismatched lines."""
    per = len(folds[0][0]) if folds else 0
    lines = [header if header is not None else f"{len(folds)}\t{per}"]
    for matched, mismatched in folds:
        lines += ["\t".join(str(x) for x in m) for m in matched]
        lines += ["\t".join(str(x) for x in m) for m in mismatched]
    return "\n".join(lines) + "\n"


def make_lfw_tree(
    root: Path,
    people: dict[str, int],
    *,
    pairs: str | None = None,
    dev: dict[str, str] | None = None,
    size: tuple[int, int] = (250, 250),
) -> dict[str, list[str]]:
    """Write lfw/<Name>/<Name>_NNNN.jpg and (if given) pairs.txt and dev files; -> name -> relative paths."""
    root = Path(root)
    written: dict[str, list[str]] = {}
    seed = 1000
    for name, count in people.items():
        (root / "lfw" / name).mkdir(parents=True, exist_ok=True)
        written[name] = []
        for n in range(1, count + 1):
            seed += 1
            rel = pair_path(name, n)
            (root / "lfw" / rel).write_bytes(jpeg_bytes(size, seed=seed))
            written[name].append(rel)
    if pairs is not None:
        (root / "pairs.txt").write_text(pairs)
    for fname, text in (dev or {}).items():
        (root / fname).write_text(text)
    return written
