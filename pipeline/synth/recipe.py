"""How one benchmark image is made, and the record that lets anyone make it again.

An image is a pure function of (identity, labels, domain, image index, benchmark seed, size, style):
the image index picks its own seed stream for the nuisance draw (`faces.sample_params`), the face is
rendered (`faces.render_face`) and encoded as a JPEG with the quality that draw chose. The writer
makes every image this way, and writes `celeba/render_params.json`, which holds everything needed to
make any CelebA-format image again: the benchmark's seed, size and style, every identity's traits,
and per image its identity, index and labels. With one label flipped, the same recipe gives the
true counterfactual of that image (`counterfactual`): the same person, pose, light and noise, with
only that attribute changed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.attributes import CELEBA_ATTRIBUTES, column_of
from pipeline.synth.faces import ImageParams, render_face, sample_params
from pipeline.synth.population import Identity
from pipeline.synth.style import DEFAULT_STYLE, Style

CELEBA_STREAM, LFW_STREAM = 0, 100  # sub-streams of the seed: the two datasets never share one
RECORDS_FILE = "render_params.json"  # under the CelebA-format tree
_BLURRY = CELEBA_ATTRIBUTES.index("Blurry")


def seq(seed: int, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, *keys])


def image_params(seed: int, domain: str, index: int, labels, size: int, style: Style = DEFAULT_STYLE) -> ImageParams:
    """The nuisance draw of image `index` (1-based, per domain) of a benchmark."""
    stream = CELEBA_STREAM if domain == "celeba" else LFW_STREAM
    return sample_params(seq(seed, stream + 10, index), domain, bool(labels[_BLURRY]), size, style.nuisance)


def render_image(ident: Identity, labels, domain: str, index: int, seed: int, size: int,
                 style: Style = DEFAULT_STYLE) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """(pixels before JPEG, ground-truth regions, JPEG quality) of one benchmark image."""
    params = image_params(seed, domain, index, labels, size, style)
    img, regions = render_face(ident, labels, params, size, style)
    return img, regions, params.jpeg_quality


def jpeg_bytes(img: np.ndarray, quality: int) -> bytes:
    """The image file's bytes, exactly as the writer stores them."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def identity_from_summary(d: dict) -> Identity:
    """An Identity from `Identity.summary()` (JSON turns tuples into lists)."""
    return Identity(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


@dataclass(frozen=True)
class RenderRecords:
    """The contents of `render_params.json`: how to make every CelebA-format image of a benchmark again."""

    seed: int
    size: int
    style: Style
    identities: list[Identity]
    images: dict[str, tuple[int, int, str]]  # image id -> (identity index, image index, 40 labels as '0'/'1')

    def to_json(self) -> dict:
        return {
            "format": "faceaug synthetic render records: image id -> [identity index into 'identities', image index, "
                      "the 40 labels in list_attr_celeba.txt order as 0/1 characters]; see pipeline/synth/recipe.py",
            "seed": self.seed, "size": self.size, "style": self.style.as_dict(),
            "identities": [i.summary() for i in self.identities],
            "images": {k: list(v) for k, v in self.images.items()},
        }

    def write(self, celeba_dir: str | Path) -> Path:
        path = Path(celeba_dir) / RECORDS_FILE
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")
        return path

    @classmethod
    def read(cls, celeba_dir: str | Path) -> "RenderRecords":
        """Raise FileNotFoundError (naming the file) where the tree is not a faceaug synthetic benchmark."""
        path = Path(celeba_dir) / RECORDS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no render records; the true counterfactual exists only for faceaug's "
                                    f"synthetic benchmark (rendered by `faceaug synth` or `faceaug data prepare`), not for real data")
        try:
            d = json.loads(path.read_text())
            return cls(seed=int(d["seed"]), size=int(d["size"]), style=Style(**d["style"]),
                       identities=[identity_from_summary(t) for t in d["identities"]],
                       images={k: (int(v[0]), int(v[1]), str(v[2])) for k, v in d["images"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not valid render records ({type(exc).__name__}: {exc})") from None

    def labels(self, image_id: str) -> np.ndarray:
        return np.frombuffer(self.record(image_id)[2].encode("ascii"), dtype=np.uint8) - ord("0")

    def record(self, image_id: str) -> tuple[int, int, str]:
        try:
            return self.images[image_id]
        except KeyError:
            raise KeyError(f"image {image_id!r} is not in this benchmark's render records") from None

    def render(self, image_id: str, labels=None) -> tuple[bytes, dict[str, np.ndarray]]:
        """(JPEG bytes, regions) of an image, with its own labels or the ones given."""
        identity, index, _ = self.record(image_id)
        labels = self.labels(image_id) if labels is None else np.asarray(labels, dtype=np.int8)
        img, regions, quality = render_image(self.identities[identity], labels, "celeba", index, self.seed, self.size, self.style)
        return jpeg_bytes(img, quality), regions

    def counterfactual(self, image_id: str, attribute: str, value: int) -> tuple[bytes, dict[str, np.ndarray]]:
        """The image re-rendered with `attribute` (e.g. 'eyeglasses') set to `value` (0/1), all else unchanged."""
        labels = self.labels(image_id).astype(np.int8).copy()
        labels[CELEBA_ATTRIBUTES.index(column_of(attribute))] = int(value)
        return self.render(image_id, labels)

    def ingested(self, image_id: str, attribute: str, value: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels, packed region bits) of the counterfactual exactly as `faceaug data prepare` ingests an image:
        JPEG decoded, preprocessed to `size` (the aligned crop of a square image is the whole image). With
        `value` the image's own label this is the ingested original, bit for bit."""
        from pipeline.images import decode_rgb, preprocess, preprocess_regions
        from pipeline.synth.regions import encode_regions

        data, regions = self.counterfactual(image_id, attribute, value)
        pixels = preprocess(decode_rgb(data, f"counterfactual of {image_id}"), size, 1.0)
        return pixels, preprocess_regions(encode_regions(regions), size, 1.0)

    def digest(self) -> str:
        """A short fingerprint of what the records render (the counterfactual editor's checkpoint id)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]
