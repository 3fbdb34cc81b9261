"""Every registered editor, built-in or plugin, passes the same checks (timm's test_models pattern)."""

import pytest
import torch

from editing.registry import available
from editing.training import ALL
from pipeline.config import load_config
from _stores import make_originals_store

EDITORS = sorted(available())


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    return make_originals_store(tmp_path_factory.mktemp("contract") / "originals").root


def _trained(name: str, originals: str, out_dir, seed: int = 0):
    plugin = available()[name]
    if plugin.trainer is None:
        return plugin.editor.load(out_dir)
    cfg = load_config("tiny", ["editor.iterations=2", f"editor.name={name}"])
    # A multi-attribute editor trains once for all attributes; loading its directory binds the first one.
    attribute = ALL if plugin.multi_attribute else "eyeglasses"
    trainer = plugin.trainer(attribute=attribute, image_size=32, out_dir=out_dir, config=cfg.editor)
    return plugin.editor.load(trainer.fit([originals], progress=lambda m: None, seed=seed))


@pytest.mark.parametrize("name", EDITORS)
def test_editor_contract(name, originals, tmp_path):
    editor = _trained(name, originals, tmp_path / "a")
    assert editor.name == name
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    target = editor.targets_for("added", 2)
    target = torch.cat([target, editor.targets_for("removed", 2)])
    result = editor.edit(x, target)
    assert result.images.shape == x.shape and result.images.dtype == torch.float32
    assert result.images.min() >= -1 and result.images.max() <= 1
    assert torch.isfinite(result.images).all()
    if editor.has_mask:
        assert result.mask is not None and result.mask.shape == (4, 1, 32, 32)
        assert result.mask.min() >= 0 and result.mask.max() <= 1
    else:
        assert result.mask is None
    # deterministic: the same input and target give the same output
    assert torch.equal(result.images, editor.edit(x, target).images)
    # and training under the same seed gives the same editor
    again = _trained(name, originals, tmp_path / "b")
    assert torch.equal(result.images, again.edit(x, target).images)
    with pytest.raises(ValueError):
        editor.edit(x, target[:2])  # one target per image
