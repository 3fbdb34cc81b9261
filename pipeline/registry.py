"""Named registries of interchangeable parts: editors, verifier heads and backbones, evaluation protocols.

    HEADS = Registry("verifier head", entry_points="faceaug.heads")

    @HEADS.register("cosface")
    class CosFaceHead(...): ...

    HEADS.get("cosface")             # the class
    HEADS.get("cosfase")             # UnknownNameError: unknown verifier head 'cosfase'. Available: arcface, cosface

Explicit registration, and an error on a second part with the same name (fsspec's
`register_implementation(..., clobber=False)`). Parts of other packages arrive through an
entry-point group, loaded lazily on the first lookup (pytest's `pytest11`); one that fails to
import is reported with its error (`failures()`), not swallowed. `builtins` names a module or
package whose import registers the project's own parts (for a package, every module in it).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class PluginLoadError(RuntimeError):
    """A part is installed under this name but its module failed to import."""


class Registry(Generic[T]):
    def __init__(self, kind: str, *, entry_points: str | None = None, builtins: str | None = None,
                 check: Callable[[str, Any], T] | None = None):
        self.kind = kind
        self.group = entry_points
        self.builtins = builtins
        self._check = check
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self._from_entry_points: set[str] = set()
        self._loaded = False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"

    # -- registering -----------------------------------------------------------------------------
    def add(self, name: str, item: T, *, origin: str = "", clobber: bool = False) -> T:
        """Register `item` as `name`; a different item under an existing name is an error unless `clobber`."""
        if self._check is not None:
            item = self._check(name, item)
        existing = self._items.get(name)
        if existing is not None and existing != item and not clobber:
            raise ValueError(f"a {self.kind} named {name!r} is already registered ({self._origins.get(name) or existing!r})")
        self._items[name] = item
        self._origins[name] = origin or getattr(item, "__module__", "")
        return item

    def register(self, name: str, *, clobber: bool = False) -> Callable[[T], T]:
        """Decorator form of `add`."""
        def decorate(item: T) -> T:
            return self.add(name, item, clobber=clobber)
        return decorate

    # -- loading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.builtins:
            module = importlib.import_module(self.builtins)
            for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.builtins}.{info.name}")
        if self.group:
            for ep in entry_points(group=self.group):
                dist = getattr(getattr(ep, "dist", None), "name", "") or "unknown distribution"
                try:
                    item = ep.load()
                except Exception as exc:  # report, don't swallow: the user sees which plugin and why
                    self._failures[ep.name] = f"{ep.value} (from {dist}) failed to import: {type(exc).__name__}: {exc}"
                    continue
                try:
                    self.add(ep.name, item, origin=f"{ep.value} ({dist})")
                    self._from_entry_points.add(ep.name)
                except (ValueError, TypeError) as exc:
                    self._failures[ep.name] = str(exc)

    def reload(self) -> None:
        """Forget what entry points gave and read them again (after installing a plugin)."""
        for name in self._from_entry_points:
            self._items.pop(name, None)
        self._from_entry_points.clear()
        self._failures.clear()
        self._loaded = False
        self._load()

    # -- lookup ----------------------------------------------------------------------------------
    def available(self) -> dict[str, T]:
        self._load()
        return dict(sorted(self._items.items()))

    def failures(self) -> dict[str, str]:
        """Parts whose entry point could not be loaded, with the reason."""
        self._load()
        return dict(self._failures)

    def origin(self, name: str) -> str:
        self._load()
        return self._origins.get(name, "")

    def names(self) -> list[str]:
        return list(self.available())

    def get(self, name: str) -> T:
        self._load()
        if name in self._items:
            return self._items[name]
        if name in self._failures:
            raise PluginLoadError(f"{self.kind} {name!r} is installed but could not be loaded: {self._failures[name]}")
        raise UnknownNameError(f"unknown {self.kind} {name!r}. Available: {', '.join(sorted(self._items)) or '(none)'}")

    def check_names(self, names: Iterable[str], where: str) -> None:
        """Raise UnknownNameError naming the config key `where` for the first unknown name."""
        for name in names:
            try:
                self.get(name)
            except (UnknownNameError, PluginLoadError) as exc:
                raise UnknownNameError(f"{where}: {exc}") from None
