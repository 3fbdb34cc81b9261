"""The editor registry.

Built-in editors are registered exactly as third-party ones are: through the
`faceaug.editors` entry-point group (see pyproject.toml). An entry point names an
`EditorPlugin` object. Entry points are loaded lazily, on the first lookup; a plugin
that fails to import is reported with its error instead of being swallowed, and an
unknown name raises an error that lists what is available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from editing.base import Editor, Trainer

ENTRY_POINT_GROUP = "faceaug.editors"


@dataclass(frozen=True)
class EditorPlugin:
    name: str
    editor: type[Editor]
    trainer: type[Trainer] | None = None  # None: nothing to train (e.g. the identity control)
    description: str = ""
    multi_attribute: bool = False  # one model edits every configured attribute (trained once, see editing/training.py)
    distribution: str = field(default="", compare=False)  # filled in from the entry point


class UnknownEditorError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class PluginLoadError(RuntimeError):
    pass


_plugins: dict[str, EditorPlugin] = {}
_failures: dict[str, str] = {}
_loaded = False


def register(plugin: EditorPlugin, *, clobber: bool = False) -> None:
    """Register an editor; a second editor with the same name is an error unless `clobber`."""
    if not isinstance(plugin, EditorPlugin):
        raise TypeError(f"expected an EditorPlugin, got {type(plugin).__name__}")
    existing = _plugins.get(plugin.name)
    if existing is not None and existing != plugin and not clobber:
        raise ValueError(f"an editor named {plugin.name!r} is already registered ({existing.editor.__module__})")
    _plugins[plugin.name] = plugin


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", "") if getattr(ep, "dist", None) else ""
        try:
            plugin = ep.load()
        except Exception as exc:  # report, don't swallow: the user sees which plugin and why
            _failures[ep.name] = f"{ep.value} (from {dist or 'unknown distribution'}) failed to import: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(plugin, EditorPlugin) or plugin.name != ep.name:
            _failures[ep.name] = f"{ep.value} is not an EditorPlugin named {ep.name!r}"
            continue
        try:
            register(EditorPlugin(plugin.name, plugin.editor, plugin.trainer, plugin.description, plugin.multi_attribute, dist))
        except ValueError as exc:
            _failures[ep.name] = str(exc)


def reload() -> None:
    """Forget what was loaded and read the entry points again (after installing a plugin)."""
    global _loaded
    _plugins.clear()
    _failures.clear()
    _loaded = False
    _load_entry_points()


def available() -> dict[str, EditorPlugin]:
    _load_entry_points()
    return dict(sorted(_plugins.items()))


def failures() -> dict[str, str]:
    """Plugins whose entry point could not be loaded, with the reason."""
    _load_entry_points()
    return dict(_failures)


def get_plugin(name: str) -> EditorPlugin:
    _load_entry_points()
    if name in _plugins:
        return _plugins[name]
    if name in _failures:
        raise PluginLoadError(f"editor {name!r} is installed but could not be loaded: {_failures[name]}")
    raise UnknownEditorError(f"unknown editor {name!r}. Available editors: {', '.join(sorted(_plugins)) or '(none)'}")
