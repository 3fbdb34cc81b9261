"""A trained verifier at work: load it, and embed images (flip-averaged, unit norm) or a whole shard store.

Training is `recognition.verifier`; the experiment embeds every arm's test images with these
(`recognition.experiment.embed_tests`), and the identity-preservation stage scores edits with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.images import batch_to_model_range
from pipeline.layout import VERIFIER_WEIGHTS as WEIGHTS
from pipeline.precision import amp, autocast_dtype
from recognition.verifier import Verifier


def load_verifier(out_dir: str | Path, device: str | torch.device | None = None) -> Verifier:
    """The trained model of `out_dir` (or a path to its verifier.pt), in eval mode."""
    path = Path(out_dir)
    path = path / WEIGHTS if path.is_dir() else path
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = Verifier(**state["arch"])
    model.load_state_dict(state["model"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.image_size = state["image_size"]
    return model.to(dev, memory_format=torch.channels_last).eval()


def embed(model: Verifier, images: torch.Tensor, batch_size: int = 256, precision: str = "auto") -> np.ndarray:
    """N x D float32 unit-norm embeddings: mean of the image's and its mirror's embedding, re-normalised.

    images: N x 3 x H x W float in [-1, 1] (uint8 0..255 is converted).
    precision: `evaluation.precision` -- auto (bf16 autocast on a GPU, fp32 on a CPU), bf16 or fp32.
    """
    model.eval()
    dev = next(model.parameters()).device
    autocast = autocast_dtype(precision, dev)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size]
            if x.dtype == torch.uint8:
                x = batch_to_model_range(x)
            x = x.to(dev, torch.float32).contiguous(memory_format=torch.channels_last)
            with amp(autocast, dev.type):
                e = model(x) + model(x.flip(-1).contiguous(memory_format=torch.channels_last))
            out.append(F.normalize(e.float(), dim=1).cpu())
    if not out:
        return np.zeros((0, model.arch_args["embedding_dim"]), np.float32)
    return torch.cat(out).numpy()


def embed_store(model: Verifier, store_path: str, split: str | None = None, *, edit_kinds: Sequence[str] | None = None,
                batch_size: int = 256, precision: str = "auto") -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sample_ids, identities int64 [N], embeddings float32 [N x D]) for every row of a shard store
    (optionally one split / some edit kinds), in stored order."""
    from pipeline.loader import ShardImageDataset

    ds = ShardImageDataset(store_path, split=split, edit_kinds=edit_kinds, shuffle=False)
    ids: list[str] = []
    identities: list[int] = []
    chunks: list[np.ndarray] = []
    images: list[torch.Tensor] = []

    def flush() -> None:
        if images:
            chunks.append(embed(model, torch.stack(images), batch_size, precision))
            images.clear()

    for item in ds:
        ids.append(item["sample_id"])
        identities.append(item["identity"])
        images.append(item["image"])
        if len(images) == batch_size:
            flush()
    flush()
    emb = np.concatenate(chunks) if chunks else np.zeros((0, model.arch_args["embedding_dim"]), np.float32)
    return ids, np.asarray(identities, np.int64), emb
