"""Every registered editor, built-in or plugin, passes the same checks (timm's test_models pattern)."""

from importlib.metadata import distribution

import pytest
import torch

from _stores import make_originals_store
from editing.registry import available, failures
from pipeline.config import load_config
from pipeline.layout import ALL

EDITORS = sorted(available())
BUILT_IN = sorted(ep.name for ep in distribution("faceaug").entry_points if ep.group == "faceaug.editors")  # pyproject.toml's


def test_every_built_in_editor_loaded_and_none_failed():
    # the parametrised contract below only checks what the registry holds: an empty or partial registry must fail here
    assert failures() == {}
    assert len(BUILT_IN) >= 8 and set(BUILT_IN) <= set(EDITORS)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A tiny synthetic run's originals: real faces, which the counterfactual editor can re-render."""
    import os

    from pipeline.ingest import prepare_data
    from pipeline.layout import RunLayout

    root = tmp_path_factory.mktemp("contract")
    cwd = os.getcwd()
    os.chdir(root)  # the synthetic benchmark lands under ./data/synthetic
    try:
        cfg = load_config("tiny", {"output_dir": str(root / "run"), "workers": 1})
        prepare_data(cfg, progress=lambda m: None)
        yield RunLayout(cfg).originals
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def faces(originals):
    """Four train faces and their source ids."""
    from editing.originals import load_originals
    from pipeline.images import batch_to_model_range

    data = load_originals([originals], "train", limit=4)
    return batch_to_model_range(data.images), data.source_ids


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
def test_editor_contract(name, originals, faces, tmp_path):
    editor = _trained(name, originals, tmp_path / "a")
    assert editor.name == name
    x, sources = faces
    target = editor.targets_for("added", 2)
    target = torch.cat([target, editor.targets_for("removed", 2)])
    result = editor.apply(x, target, sources)
    assert result.images.shape == x.shape and result.images.dtype == torch.float32
    assert result.images.min() >= -1 and result.images.max() <= 1
    assert torch.isfinite(result.images).all()
    if editor.has_mask:
        assert result.mask is not None and result.mask.shape == (4, 1, 32, 32)
        assert result.mask.min() >= 0 and result.mask.max() <= 1
    else:
        assert result.mask is None
    # deterministic: the same input and target give the same output
    assert torch.equal(result.images, editor.apply(x, target, sources).images)
    # and training under the same seed gives the same editor
    again = _trained(name, originals, tmp_path / "b")
    assert torch.equal(result.images, again.apply(x, target, sources).images)
    with pytest.raises(ValueError):
        editor.apply(x, target[:2], sources)  # one target per image


def test_counterfactual_edits_are_the_true_rerendering_and_refuse_real_data(originals, faces, tmp_path):
    from pipeline.attributes import index_of

    editor = _trained("counterfactual", originals, tmp_path / "cf")
    x, sources = faces
    own = torch.tensor([float(editor.records.labels(s)[index_of("eyeglasses")]) for s in sources])
    # toward each face's own label: the ingested original, bit for bit
    assert torch.equal(editor.apply(x, own, sources).images, x)
    flipped = editor.apply(x, 1 - own, sources)
    changed = (flipped.images - x).abs().amax(1) > 0.2  # beyond what re-encoding the JPEG moves
    assert changed.any(dim=(1, 2)).all()  # every face changed...
    assert (changed & (flipped.mask[:, 0] < 0.5)).float().mean() < 0.02  # ...inside its true region
    with pytest.raises(ValueError, match="pass its source image ids"):
        editor.edit(x, own)
    with pytest.raises(ValueError, match="is not that face"):
        editor.apply(x.flip(0), own, sources)  # sources that do not match the images
    # on a dataset without render records (real data): an error saying what the editor is for
    real = make_originals_store(tmp_path / "real" / "originals").root
    with pytest.raises(FileNotFoundError, match="only for faceaug's synthetic benchmark"):
        _trained("counterfactual", real, tmp_path / "cf-real")
