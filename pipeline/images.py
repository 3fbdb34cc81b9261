"""Decoding and preprocessing of face images, with bad input reported by file.

Every image that enters the pipeline goes through `load_rgb` (decode, convert to
8-bit RGB, record what was converted) and `preprocess` (the paper's aligned crop
and resize). Pixels stay uint8 until a model needs them; `to_model_range` maps
them to [-1, 1] as the paper does (section 3: "the input image has been
normalized to [-1,1]").
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Smaller images than this cannot hold a face worth editing; they are rejected.
MIN_SIDE = 16
# Larger ones are rejected before any pixel is decoded: a few-MB PNG can declare 30000x30000
# pixels (a decompression bomb) and take gigabytes to decode. 8192x8192 is far above any face
# dataset (CelebA 178x218, FFHQ 1024x1024) and below PIL's own warning threshold (~89 Mpx).
MAX_PIXELS = 8192 * 8192
# An image file larger than this is not read into memory at all.
MAX_FILE_BYTES = 256 * 2**20


class BadImageError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ImageReport:
    """Counts of what was converted or skipped while loading a set of images."""

    converted: dict[str, int] = field(default_factory=dict)  # e.g. {"grayscale->RGB": 3}
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def note(self, conversion: str) -> None:
        self.converted[conversion] = self.converted.get(conversion, 0) + 1

    def merge(self, other: "ImageReport") -> None:
        for key, n in other.converted.items():
            self.converted[key] = self.converted.get(key, 0) + n
        self.skipped.extend(other.skipped)

    def as_dict(self) -> dict:
        return {
            "converted": dict(sorted(self.converted.items())),
            "skipped": len(self.skipped),
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def decode_rgb(data: bytes, name: str, report: ImageReport | None = None) -> np.ndarray:
    """Decode encoded image bytes to an HxWx3 uint8 array, converting modes as needed.

    Grayscale, palette, CMYK, 16-bit and alpha images are converted to RGB (alpha is
    composited on black, which is what a viewer shows for CelebA-style crops) and
    counted in `report`. Truncated or undecodable data raises BadImageError naming `name`.
    """
    if not data:
        raise BadImageError(name, "file is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_declared_size(im.size, name)  # before decoding a single pixel
            im.load()  # forces a full decode: a truncated JPEG fails here, not later
            mode = im.mode
            if mode == "RGB":
                rgb = im
            elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (0, 0, 0))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
                _note(report, f"{mode}->RGB (alpha dropped)")
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                arr16 = np.asarray(im, dtype=np.float64)
                top = max(float(arr16.max()), 1.0)
                gray = Image.fromarray((arr16 / top * 255.0).round().astype(np.uint8))
                rgb = gray.convert("RGB")
                _note(report, f"{mode}->RGB")
            else:  # L, P, CMYK, YCbCr, 1, F ...
                rgb = im.convert("RGB")
                _note(report, f"{mode}->RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:  # raised by Image.open itself, above 2x PIL's limit
        raise _bomb(name, exc) from None
    except UnidentifiedImageError:
        raise BadImageError(name, "not a recognisable image file") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:  # PIL reports truncation as OSError
        raise BadImageError(name, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadImageError(name, f"decoded to unexpected shape {arr.shape}")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImageError(name, f"image is {w}x{h}, smaller than the {MIN_SIDE}px minimum")
    return np.ascontiguousarray(arr)


def load_rgb(path: str | Path, report: ImageReport | None = None) -> np.ndarray:
    """Read and decode one image file (see `decode_rgb` and `read_image_file`); bad files raise BadImageError."""
    return decode_rgb(read_image_file(path), str(path), report)


def file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be an image file (missing, a dangling symlink, a symlink loop, a FIFO, socket,
    device or directory, too large), or None for a regular file. Looks only at os.stat, never opens it."""
    try:
        st = os.stat(path)  # follows symlinks: a FIFO behind a symlink is still a FIFO
    except FileNotFoundError:
        if os.path.lexists(path):
            try:
                target = f" to {os.readlink(path)!r}"
            except OSError:  # replaced since the stat; the reason above still holds
                target = ""
            return f"is a symlink to a missing file (dangling symlink{target})"
        return "file does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (too many levels of symbolic links)"
        return f"cannot read file ({exc.strerror or exc})"
    except ValueError:  # a NUL byte in the name (from an annotation file)
        return "is not a valid file name (it contains a NUL byte)"
    return _type_problem(st)


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file that is a regular file of at most MAX_FILE_BYTES; BadImageError otherwise.

    The type is checked with os.stat before opening, because opening a FIFO for reading blocks
    until a writer appears (forever, in a dataset tree). The open itself is non-blocking and the
    type is checked again on the open descriptor, so a file swapped for a FIFO in between is caught too.
    """
    why = file_problem(path)
    if why is not None:
        raise BadImageError(path, why)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadImageError(path, f"cannot open file ({exc.strerror or exc})") from None
    try:
        why = _type_problem(os.fstat(fd))
        if why is not None:
            raise BadImageError(path, why)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadImageError(path, f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # grew after the stat
        raise BadImageError(path, f"file is larger than {MAX_FILE_BYTES // 2**20} MiB, too large for an image")
    return data


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding its pixels; BadImageError for a bad file."""
    data = read_image_file(path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_declared_size(im.size, str(path))
            return im.size
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc) from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not a recognisable image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(path, f"cannot read image header ({type(exc).__name__}: {exc})") from None


def load_mask(path: str | Path) -> np.ndarray:
    """A region bitmask file (any mode, converted to 8-bit grayscale) as HxW uint8; BadImageError naming the file."""
    data = read_image_file(path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_declared_size(im.size, str(path))
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise BadImageError(path, f"cannot decode region mask ({type(exc).__name__}: {exc})") from None


def _type_problem(st: os.stat_result) -> str | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if st.st_size > MAX_FILE_BYTES:
            return f"file is {st.st_size / 2**20:.0f} MiB, larger than the {MAX_FILE_BYTES // 2**20} MiB an image may be"
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not an image"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "not a regular file")
    return f"is {kind}, not a regular image file"


def _check_declared_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise BadImageError(name, f"declares {w}x{h} = {w * h:,} pixels, more than the {MAX_PIXELS:,} an image may have "
                                  "(a decompression bomb?); not decoded")


def _bomb(name: str | Path, exc: Exception) -> BadImageError:
    """PIL's own refusal (Image.open raises it above twice PIL's limit, before our check can run), reworded."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return BadImageError(name, f"declares {declared}, more than the {MAX_PIXELS:,} an image may have "
                               "(a decompression bomb?); not decoded")


def center_square_crop(arr: np.ndarray, crop_fraction: float = 1.0) -> np.ndarray:
    """The centred square of side `crop_fraction` * min(H, W).

    This is the crop used for CelebA's aligned images: 178x218 -> the central 178x178
    (rows 20..197), as StarGAN and the public SaGAN code do before resizing to 128.
    The aligned CelebA faces are centred with the eyes at fixed positions, so this
    keeps the whole face and drops the neck and the top of the hair. LFW's 250x250
    images show more background around a smaller face; a `crop_fraction` below 1
    (see the LFW reader) cuts them to a comparable framing.
    """
    h, w = arr.shape[:2]
    side = int(round(min(h, w) * crop_fraction))
    top = (h - side) // 2
    left = (w - side) // 2
    return arr[top : top + side, left : left + side]


def resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize a square uint8 image to size x size (bicubic down, antialiased)."""
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    im = Image.fromarray(arr).resize((size, size), Image.BICUBIC, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def preprocess(arr: np.ndarray, size: int, crop_fraction: float = 1.0) -> np.ndarray:
    """Aligned crop then resize: HxWx3 uint8 -> size x size x 3 uint8."""
    return resize(center_square_crop(arr, crop_fraction), size)


def preprocess_regions(bits: np.ndarray, size: int, crop_fraction: float = 1.0) -> np.ndarray:
    """Crop and resize a region bitmask like its image; a pixel keeps bit k if any of its area had it.

    Each bit plane is resized with area averaging and kept where the average is > 0, so the
    resized region still covers every pixel that the attribute can change.
    """
    square = center_square_crop(bits, crop_fraction)
    out = np.zeros((size, size), np.uint8)
    for bit in range(8):
        plane = ((square >> bit) & 1).astype(np.float32)
        if not plane.any():
            continue
        small = np.asarray(Image.fromarray(plane, mode="F").resize((size, size), Image.BOX))
        out |= ((small > 0).astype(np.uint8) << bit)
    return out


def to_model_range(arr: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 3xHxW in [-1, 1]."""
    return (arr.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def from_model_range(x: np.ndarray) -> np.ndarray:
    """float 3xHxW in [-1, 1] -> uint8 HxWx3 (rounded, clipped)."""
    return np.clip((np.asarray(x).transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def batch_to_model_range(batch):
    """A torch uint8 batch N x 3 x H x W (or 3 x H x W) -> float32 in [-1, 1] (a new tensor)."""
    return batch.float().div_(127.5).sub_(1.0)


def batch_from_model_range(batch) -> np.ndarray:
    """A torch batch N x 3 x H x W in [-1, 1] -> uint8 N x H x W x 3 NumPy (clamped, rounded): what is encoded."""
    import torch

    return ((batch.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def decode_mask(data: bytes, name: str) -> np.ndarray:
    """Decode an 8-bit single-channel PNG (a region bitmask) to HxW uint8; bad data raises BadImageError naming `name`."""
    if not data:
        raise BadImageError(name, "region mask is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_declared_size(im.size, name)
            if im.mode != "L":
                raise BadImageError(name, f"region mask has mode {im.mode}, expected 8-bit grayscale (L)")
            return np.asarray(im, dtype=np.uint8)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb(name, exc) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(name, f"cannot decode region mask ({exc})") from None


def encode_png(arr: np.ndarray) -> bytes:
    """Lossless PNG bytes of an HxWx3 (or HxW) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _note(report: ImageReport | None, conversion: str) -> None:
    if report is not None:
        report.note(conversion)
