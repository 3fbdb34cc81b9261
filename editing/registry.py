"""The editor registry.

Built-in editors are registered exactly as third-party ones are: through the `faceaug.editors`
entry-point group (see pyproject.toml). An entry point names an `EditorPlugin` object. Entry points
are loaded lazily, on the first lookup; a plugin that fails to import is reported with its error
instead of being swallowed, and an unknown name raises an error that lists what is available
(`pipeline.registry.Registry`, which also holds the verifier's heads, backbones and protocols).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from editing.base import Editor, Trainer
from pipeline.registry import PluginLoadError, Registry, UnknownNameError

ENTRY_POINT_GROUP = "faceaug.editors"


@dataclass(frozen=True)
class EditorPlugin:
    name: str
    editor: type[Editor]
    trainer: type[Trainer] | None = None  # None: nothing to train (e.g. the identity control)
    description: str = ""
    multi_attribute: bool = False  # one model edits every configured attribute (trained once, see editing/train.py)
    distribution: str = field(default="", compare=False)  # filled in from the entry point


class UnknownEditorError(UnknownNameError):
    pass


def _checked(name: str, plugin) -> EditorPlugin:
    if not isinstance(plugin, EditorPlugin):
        raise TypeError(f"expected an EditorPlugin, got {type(plugin).__name__}")
    if plugin.name != name:
        raise ValueError(f"the entry point {name!r} names an EditorPlugin called {plugin.name!r}")
    return plugin


EDITORS: Registry[EditorPlugin] = Registry("editor", entry_points=ENTRY_POINT_GROUP, check=_checked)


def register(plugin: EditorPlugin, *, clobber: bool = False) -> None:
    """Register an editor; a second editor with the same name is an error unless `clobber`."""
    EDITORS.add(plugin.name, plugin, clobber=clobber)


def reload() -> None:
    """Forget what was loaded and read the entry points again (after installing a plugin)."""
    EDITORS.reload()


def available() -> dict[str, EditorPlugin]:
    return {name: replace(p, distribution=_distribution(name)) for name, p in EDITORS.available().items()}


def failures() -> dict[str, str]:
    """Plugins whose entry point could not be loaded, with the reason."""
    return EDITORS.failures()


def get_plugin(name: str) -> EditorPlugin:
    try:
        return replace(EDITORS.get(name), distribution=_distribution(name))
    except UnknownNameError as exc:
        raise UnknownEditorError(str(exc).replace("Available:", "Available editors:")) from None


def _distribution(name: str) -> str:
    """The distribution an entry-point editor came from ('' for one registered in code)."""
    origin = EDITORS.origin(name)
    return origin[origin.rfind("(") + 1 : -1] if origin.endswith(")") else ""


__all__ = ["ENTRY_POINT_GROUP", "EDITORS", "EditorPlugin", "PluginLoadError", "UnknownEditorError", "available", "failures",
           "get_plugin", "register", "reload"]
