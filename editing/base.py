"""The editor plugin interface: what every face editor offers for inference.

An editor edits one or more attributes of a batch of faces:

    editor = get_plugin("sagan").editor.load("data/runs/demo/editors/sagan-eyeglasses")
    result = editor.edit(images, target)       # images: Bx3xHxW in [-1, 1]; target: B values
    result.images, result.mask                  # edited batch; attention mask in [0, 1] or None

`target` holds per-image target values: 0/1 for "remove"/"add", or a signed strength
for editors that have one (CRG's k). Training is not part of this surface: each editor
family has a separate `Trainer` whose `fit()` checkpoints and resumes, and whose output
directory is what `Editor.load` reads.

An editor that needs to know *which* faces it edits (the true counterfactual re-renders each
face of the synthetic benchmark) sets `needs_sources = True` and takes `sources=` (one source
image id per image, e.g. '000123.jpg') in `edit`. The stages call every editor through
`apply(images, target, sources)`, which passes them only to such editors.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class EditResult:
    images: torch.Tensor  # Bx3xHxW in [-1, 1]
    mask: torch.Tensor | None = None  # Bx1xHxW in [0, 1], where the method has one


class Editor(ABC):
    """Inference surface of a trained editor."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    has_mask: ClassVar[bool] = False
    target_kind: ClassVar[str] = "binary"  # or "strength"
    needs_sources: ClassVar[bool] = False  # True: `edit` takes sources= (one source image id per image)

    def __init__(self, attributes: tuple[str, ...], checkpoint_id: str = "none"):
        self.attributes = tuple(attributes)
        self.checkpoint_id = checkpoint_id  # recorded in every shard row the editor makes

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Editor":
        """Rebuild a trained editor from the directory its trainer wrote."""

    @abstractmethod
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        """Edit a batch toward `target` (one value per image)."""

    def apply(self, images: torch.Tensor, target: torch.Tensor, sources: list[str] | None = None) -> EditResult:
        """`edit`, with the images' source ids for an editor that needs them (`needs_sources`)."""
        if self.needs_sources:
            return self.edit(images, target, sources=sources)
        return self.edit(images, target)

    def targets_for(self, kind: str, n: int) -> torch.Tensor:
        """Target values meaning 'add' or 'remove' the attribute, for augmentation."""
        if kind not in ("added", "removed"):
            raise ValueError(f"edit kind must be 'added' or 'removed', not {kind!r}")
        return torch.full((n,), 1.0 if kind == "added" else 0.0)


class Trainer(ABC):
    """Trains one editor; `fit` writes checkpoints to `out_dir` and resumes from the latest."""

    def __init__(self, *, attribute: str, image_size: int, out_dir: str | Path, config: Any, device: str = "cpu"):
        self.attribute = attribute
        self.image_size = image_size
        self.out_dir = Path(out_dir)
        self.config = config
        self.device = torch.device(device)

    @abstractmethod
    def fit(self, train_shards: list[str], *, progress: Callable[[str], None] = print) -> Path:
        """Train on the train split of the given shard datasets; returns the directory `Editor.load` reads."""


def editor_params(model: type[BaseModel], params: dict, editor: str) -> Any:
    """Parse `editor.params` with an editor's own pydantic model; an unknown or bad key raises a
    ConfigError naming it (`editor.params.<key>`) and the editor."""
    from pipeline.config import ConfigError

    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        lines = [f"'editor.params.{'.'.join(map(str, e['loc']))}': "
                 f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigError(f"invalid editor.params for {editor}:\n  " + "\n  ".join(lines)) from None


def file_digest(path: str | Path) -> str:
    """Short sha256 of a checkpoint file, used as the checkpoint id in shard provenance."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
