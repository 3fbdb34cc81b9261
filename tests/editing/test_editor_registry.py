"""The editor registry: built-ins via entry points, third-party plugins picked up by name, clear errors."""

import sys
import textwrap

import pytest
import torch

from editing import registry
from editing.registry import EditorPlugin, PluginLoadError, UnknownEditorError, get_plugin


def _install_fake_distribution(site, dist_name: str, module: str, source: str, entry_points: str) -> None:
    """What `pip install` of a plugin leaves on disk: the module plus a .dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist_name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("faceaug_test_")]:
        del sys.modules[name]
    registry.reload()


PLUGIN_SOURCE = """
    import torch
    from editing.base import Editor, EditResult
    from editing.registry import EditorPlugin

    class Darken(Editor):
        name = "darken"
        @classmethod
        def load(cls, directory=None, device="cpu"):
            return cls(("eyeglasses",))
        def edit(self, images, target):
            return EditResult((images - 0.1 * target.view(-1, 1, 1, 1)).clamp(-1, 1))

    PLUGIN = EditorPlugin("darken", Darken, None, "a third-party test editor")
"""


def test_builtins_are_registered_through_the_entry_point_group():
    plugins = registry.available()
    assert {"identity", "sagan"} <= set(plugins)
    assert plugins["sagan"].distribution == "faceaug"  # found via faceaug's own entry points


def test_unknown_name_lists_the_available_editors():
    with pytest.raises(UnknownEditorError, match=r"unknown editor 'sagann'\. Available editors: .*identity.*sagan"):
        get_plugin("sagann")


def test_third_party_distribution_is_picked_up_by_name(site):
    _install_fake_distribution(site, "faceaug_test_darken", "faceaug_test_darken", PLUGIN_SOURCE,
                               "[faceaug.editors]\ndarken = faceaug_test_darken:PLUGIN\n")
    registry.reload()
    plugin = get_plugin("darken")
    assert plugin.distribution == "faceaug_test_darken"
    editor = plugin.editor.load(None)
    out = editor.edit(torch.zeros(2, 3, 8, 8), torch.tensor([1.0, 0.0])).images
    assert torch.allclose(out[0], torch.full((3, 8, 8), -0.1)) and torch.equal(out[1], torch.zeros(3, 8, 8))


def test_plugin_that_fails_to_import_is_reported_with_its_error(site):
    _install_fake_distribution(site, "faceaug_test_broken", "faceaug_test_broken", "import not_a_real_module_xyz\n",
                               "[faceaug.editors]\nbroken = faceaug_test_broken:PLUGIN\n")
    registry.reload()
    assert "broken" in registry.failures()
    with pytest.raises(PluginLoadError, match="not_a_real_module_xyz"):
        get_plugin("broken")
    assert "sagan" in registry.available()  # one broken plugin does not hide the others


def test_duplicate_names_are_an_error():
    plugin = get_plugin("identity")
    other = EditorPlugin("identity", get_plugin("sagan").editor)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(other)
    registry.register(plugin)  # re-registering the same object is harmless
