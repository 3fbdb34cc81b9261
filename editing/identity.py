"""The `identity` editor: returns its input unchanged.

A control: the paper's "edit with its own attribute" case (section 4.3 notes such an
edit "looks almost the same as the original one"), and a floor for every editing metric.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from editing.base import Editor, EditResult
from editing.registry import EditorPlugin


class IdentityEditor(Editor):
    name = "identity"
    version = "1"
    has_mask = True  # an all-zero mask: nothing is edited anywhere

    @classmethod
    def load(cls, directory: str | Path | None = None, device: str | torch.device = "cpu") -> "IdentityEditor":
        attributes: tuple[str, ...] = ()
        meta = Path(directory) / "editor.json" if directory else None
        if meta is not None and meta.exists():
            attributes = tuple(json.loads(meta.read_text()).get("attributes", ()))
        return cls(attributes)

    @torch.inference_mode()
    def edit(self, images: torch.Tensor, target: torch.Tensor) -> EditResult:
        if images.shape[0] != target.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {target.shape[0]} targets")
        return EditResult(images.clone(), torch.zeros_like(images[:, :1]))


PLUGIN = EditorPlugin("identity", IdentityEditor, None, "returns the input unchanged (a control)")
