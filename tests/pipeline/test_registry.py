"""The generic registry behind editors, heads, backbones and protocols."""

import pytest

from pipeline.registry import PluginLoadError, Registry, UnknownNameError


def test_register_get_and_duplicates():
    reg = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and reg.names() == ["a"]
    reg.add("a", A)  # the same object again is harmless
    with pytest.raises(ValueError, match="a widget named 'a' is already registered"):
        reg.add("a", object())
    reg.add("a", int, clobber=True)
    assert reg.get("a") is int


def test_unknown_names_list_what_is_available():
    reg = Registry("widget")
    reg.add("beta", 1)
    reg.add("alpha", 2)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'gamma'\. Available: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(UnknownNameError, match="config.key: unknown widget 'gamma'"):
        reg.check_names(["alpha", "gamma"], "config.key")


def test_builtin_package_modules_register_themselves():
    from recognition.protocols import PROTOCOLS

    assert {"celeba", "lfw"} <= set(PROTOCOLS.available())
    assert PROTOCOLS.failures() == {}


def test_entry_point_failures_are_reported(monkeypatch):
    import pipeline.registry as registry

    class BrokenEntryPoint:
        name, value, dist = "broken", "nowhere:THING", None

        def load(self):
            raise ImportError("no module named nowhere")

    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()])
    reg = Registry("widget", entry_points="faceaug.widgets")
    assert "no module named nowhere" in reg.failures()["broken"]
    with pytest.raises(PluginLoadError, match="widget 'broken' is installed but could not be loaded"):
        reg.get("broken")
