"""The editor-training stage: one editor per configured attribute, trained on the originals shards.

    <run>/editors/<editor>-<attribute>/   what the trainer writes and `Editor.load` reads
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from editing.registry import get_plugin
from pipeline.config import RunConfig


def editor_dir(cfg: RunConfig, attribute: str, editor: str | None = None) -> Path:
    return Path(cfg.output_dir) / "editors" / f"{editor or cfg.editor.name}-{attribute}"


def originals_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / "shards" / "originals"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_editor(cfg: RunConfig, attribute: str, *, device: str | None = None, progress: Callable[[str], None] = print) -> Path:
    """Train (or resume, or reuse) the configured editor for one attribute; returns its directory."""
    if attribute not in cfg.editor.attributes:
        raise ValueError(f"attribute {attribute!r} is not in editor.attributes {list(cfg.editor.attributes)}")
    plugin = get_plugin(cfg.editor.name)
    out = editor_dir(cfg, attribute)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if plugin.trainer is None:  # nothing to learn (the identity control)
        (out / "editor.json").write_text(f'{{"editor": "{plugin.name}", "attributes": ["{attribute}"]}}\n')
        return out
    if not (originals_dir(cfg) / "_manifest").exists():
        raise FileNotFoundError(f"{originals_dir(cfg)}: no originals shards; run `faceaug data prepare` first")
    trainer = plugin.trainer(attribute=attribute, image_size=cfg.data.image_size, out_dir=out, config=cfg.editor, device=device or default_device())
    return trainer.fit([str(originals_dir(cfg))], progress=progress, seed=cfg.seed)
