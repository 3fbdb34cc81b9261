"""The editor-training stage: one editor per configured attribute, trained on the originals shards.

    <run>/editors/<editor>-<attribute>/   what the trainer writes and `Editor.load` reads (pipeline.layout)

A multi-attribute editor (`EditorPlugin.multi_attribute`) is trained once, into
`<run>/editors/<editor>-all/`, and each attribute's directory then holds only an
`editor.json` naming the attribute and the shared model (`"shared": "../<editor>-all"`),
so every later stage still finds one editor directory per attribute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from editing.registry import get_plugin
from pipeline.atomic import write_json_atomic
from pipeline.config import RunConfig
from pipeline.layout import ALL, EDITOR_JSON, RunLayout


def training_units(cfg: RunConfig, attributes: list[str] | None = None) -> list[str]:
    """What the editor stage trains: one unit per attribute, or a single `all` for a multi-attribute editor."""
    return [ALL] if get_plugin(cfg.editor.name).multi_attribute else list(attributes or cfg.editor.attributes)


def training_jobs(cfg: RunConfig) -> list[tuple[str, str]]:
    """(editor, unit) for every editor the run uses (`RunConfig.editor_plan`)."""
    return [(name, unit) for name, attributes in cfg.editor_plan().items()
            for unit in training_units(cfg.for_editor(name), attributes)]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def require_originals(cfg: RunConfig) -> str:
    """The run's originals shard dataset, or an error saying which command makes it."""
    from pipeline.shards import ShardStore

    originals = RunLayout(cfg).originals
    if not ShardStore(originals).entries():
        raise FileNotFoundError(f"{originals}: no originals shards; run `faceaug data prepare` first")
    return originals


def train_editor(cfg: RunConfig, attribute: str, *, device: str | None = None, progress: Callable[[str], None] = print) -> Path:
    """Train (or resume, or reuse) the configured editor for one attribute (or `all`); returns its directory."""
    plugin = get_plugin(cfg.editor.name)
    layout = RunLayout(cfg)
    multi = attribute == ALL and plugin.multi_attribute
    if not multi and attribute not in cfg.editor.attributes:
        raise ValueError(f"attribute {attribute!r} is not in editor.attributes {list(cfg.editor.attributes)}")
    if plugin.multi_attribute and not multi:
        raise ValueError(f"{plugin.name} edits every attribute with one model: train it as {ALL!r}")
    out = layout.editor_dir(attribute)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if plugin.trainer is None:  # nothing to learn (the identity control)
        (out / EDITOR_JSON).write_text(f'{{"editor": "{plugin.name}", "attributes": ["{attribute}"]}}\n')
        return out
    originals = require_originals(cfg)
    trainer = plugin.trainer(attribute=attribute, image_size=cfg.data.image_size, out_dir=out, config=cfg.editor, device=device or default_device())
    if cfg.editor.select_every and getattr(trainer, "supports_selection", False):
        from editing.selection import Validator

        trained = trainer.fit([originals], progress=progress, seed=cfg.seed, validator=Validator.for_run(cfg, progress))
    else:
        trained = trainer.fit([originals], progress=progress, seed=cfg.seed)
    if multi:  # one pointer directory per attribute, so later stages find an editor per attribute
        for a in cfg.editor.attributes:
            pointer = layout.editor_dir(a)
            pointer.mkdir(parents=True, exist_ok=True)
            cfg.save(pointer)
            write_json_atomic({"editor": plugin.name, "attribute": a, "attributes": [a], "shared": f"../{out.name}"},
                              pointer / EDITOR_JSON)
    return trained


def load_editor(cfg: RunConfig, attribute: str, editor: str | None = None, *, directory: str | Path | None = None,
                device: str | None = None):
    """The run's trained editor for `attribute` (the run's editor by default), ready to edit."""
    name = editor or cfg.editor.name
    path = Path(directory) if directory else RunLayout(cfg).editor_dir(attribute, name)
    return get_plugin(name).editor.load(path, device=device or default_device())
