"""CRG: the two-stage schedule resumes exactly across its boundary, the direction and the safe range
of k follow sections 3.3-3.4 and 4.4, and k = 0 reconstructs."""

import json
import math

import pytest
import torch

from editing.gan import CHECKPOINT, WEIGHTS
from editing.crg import CrgEditor, CrgTrainer, attribute_direction, gan_iterations, parse_params, reference_pairs, strength
from editing.crg_nets import Encoder, LatentGenerator, doublings
from pipeline.config import ConfigError, load_config
from _stores import make_originals_store


class Interrupted(Exception):
    pass


def _trainer(out_dir, iterations=4, params=None, attribute="eyeglasses"):
    overrides = [f"editor.iterations={iterations}", "editor.checkpoint_every=1", "editor.sample_every=2", "editor.n_critic=1",
                 "editor.name=crg", f"editor.params={json.dumps(params or {'z_dim': 16})}"]
    return CrgTrainer(attribute=attribute, image_size=32, out_dir=out_dir, config=load_config("tiny", overrides).editor)


def _stop_after(step):
    """A progress callback that kills the run just before iteration `step + 1` is checkpointed."""
    def progress(line):
        if f": it {step + 1}/" in line:
            raise Interrupted
    return progress


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_originals_store(tmp_path_factory.mktemp("crg") / "originals").root


@pytest.fixture(scope="module")
def straight(store, tmp_path_factory):
    """4 iterations, uninterrupted: GAN for 2, encoder for 2."""
    return _trainer(tmp_path_factory.mktemp("crg") / "straight").fit([store], progress=lambda m: None)


@pytest.mark.parametrize("stop", [1, 3])  # inside stage 1, inside stage 2
def test_resume_across_the_stage_boundary_is_exact(store, straight, tmp_path, stop):
    assert gan_iterations(4, 0.5) == 2
    with pytest.raises(Interrupted):
        _trainer(tmp_path / "r").fit([store], progress=_stop_after(stop))
    state = torch.load(tmp_path / "r" / CHECKPOINT, weights_only=True)
    assert state["step"] == stop
    assert (int(state["stages"]["gan"]), int(state["stages"]["encoder"])) == (min(stop, 2), max(stop - 2, 0))
    log = []
    resumed = _trainer(tmp_path / "r").fit([store], progress=log.append)
    assert any(f"resuming at iteration {stop}" in line for line in log)

    a, b = torch.load(straight / WEIGHTS, weights_only=True), torch.load(resumed / WEIGHTS, weights_only=True)
    for net in ("generator", "encoder"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    assert torch.equal(a["direction"], b["direction"]) and a["k"] == b["k"] and a["references"] == b["references"]
    history = [json.loads(line) for line in (resumed / "losses.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert ["z_mse" in h for h in history] == [False, False, True, True]  # two GAN iterations, then two encoder ones
    assert (resumed / "samples" / "step-000004.png").exists()


def test_growing_iterations_after_stage_2_began_is_refused(store, tmp_path):
    _trainer(tmp_path / "e", iterations=2).fit([store], progress=lambda m: None)  # stage boundary at 1
    (tmp_path / "e" / WEIGHTS).unlink()
    with pytest.raises(ValueError, match="stage 1"):
        _trainer(tmp_path / "e", iterations=4).fit([store], progress=lambda m: None)  # would put it at 2


def test_targets_are_plus_minus_k_inside_the_safe_range(straight):
    editor = CrgEditor.load(straight)
    assert editor.target_kind == "strength" and not editor.has_mask
    low, high = editor.safe_range
    assert 0 <= low <= editor.k <= high
    p = editor.projection
    delta, spread = p["mean_with"] - p["mean_without"], 2 * min(p["std_with"], p["std_without"])
    assert editor.safe_range == pytest.approx((max(0, delta - spread), max(0, delta + spread)))
    assert torch.equal(editor.targets_for("added", 3), torch.full((3,), editor.k))
    assert torch.equal(editor.targets_for("removed", 2), torch.full((2,), -editor.k))
    with pytest.raises(ValueError):
        editor.targets_for("flipped", 2)


def test_zero_strength_reconstructs_and_k_moves_along_d(straight):
    editor = CrgEditor.load(straight, precision="fp32")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = editor.encoder(x)
        reconstruction = editor.generator(z).clamp(-1, 1)
        moved = editor.generator(z + 2.0 * editor.direction).clamp(-1, 1)
    out = editor.edit(x, torch.zeros(3))
    assert out.mask is None and out.images.dtype == torch.float32
    assert torch.equal(out.images, reconstruction)
    assert torch.equal(editor.edit(x, torch.full((3,), 2.0)).images, moved)
    assert not torch.equal(moved, reconstruction)
    assert editor.direction.norm().item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        editor.edit(x, torch.zeros(2))


def test_params_k_overrides_the_computed_strength(store, tmp_path):
    out = _trainer(tmp_path / "k", iterations=2, params={"z_dim": 16, "k": 0.75}).fit([store], progress=lambda m: None)
    editor = CrgEditor.load(out)
    assert editor.k == 0.75 and torch.equal(editor.targets_for("removed", 1), torch.tensor([-0.75]))


def test_an_attribute_no_training_face_has_is_refused_before_training(store, tmp_path):
    with pytest.raises(ValueError, match="0 with"):  # no face in the store is labelled No_Beard
        _trainer(tmp_path / "nb", attribute="no_beard").fit([store], progress=lambda m: None)
    assert not (tmp_path / "nb" / CHECKPOINT).exists()


def test_load_without_training_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / WEIGHTS)):
        CrgEditor.load(tmp_path)


@pytest.mark.parametrize("params, key", [({"zdim": 8}, "zdim"), ({"z_dim": 1}, "z_dim"), ({"encoder_fraction": 1.0}, "encoder_fraction"),
                                         ({"k": -1.0}, "k"), ({"reference_pairs": 0}, "reference_pairs")])
def test_bad_params_are_named(params, key, tmp_path):
    with pytest.raises(ConfigError, match=f"'editor.params.{key}'"):
        parse_params(params)
    with pytest.raises(ConfigError, match=f"'editor.params.{key}'"):
        _trainer(tmp_path, params=params)  # the trainer refuses before reading any data


def test_defaults():
    p = parse_params({})
    assert (p.z_dim, p.encoder_fraction, p.k) == (128, 0.5, None)
    assert [gan_iterations(n, 0.5) for n in (1, 2, 3, 4, 300)] == [1, 1, 2, 2, 150]
    assert gan_iterations(10, 0.25) == 8


def test_direction_is_the_renormalised_mean_of_unit_pair_directions():
    z_with = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    z_without = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # pair directions (1, 0) and (0, 1)
    d = attribute_direction(z_with, z_without)
    assert torch.allclose(d, torch.tensor([1.0, 1.0]) / math.sqrt(2))


def test_strength_and_safe_range_from_the_projected_densities():
    # with: mean 3, std 1; without: mean 0, std 0.5 -> Δ = 3, σ = 0.5, range [3 - 1, 3 + 1]
    k, safe, stats = strength(torch.tensor([2.0, 4.0]), torch.tensor([-0.5, 0.5]))
    assert k == pytest.approx(3.0) and safe == pytest.approx((2.0, 4.0))
    assert stats == pytest.approx({"mean_with": 3.0, "std_with": 1.0, "mean_without": 0.0, "std_without": 0.5})
    # classes in the wrong order along d: no safe positive strength
    k, safe, _ = strength(torch.tensor([-0.5, 0.5]), torch.tensor([2.0, 4.0]))
    assert k == 0 and safe == (0.0, 0.0)


def test_reference_pairs_prefer_one_person_with_and_without():
    identities = torch.tensor([1, 1, 2, 2, 3, 3, 4])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])  # only person 1 has images on both sides
    w, wo = reference_pairs(identities, labels, 5, torch.Generator().manual_seed(0))
    assert len(w) == len(wo) == 5
    assert (labels[w] == 1).all() and (labels[wo] == 0).all()
    assert (w[0].item(), wo[0].item()) == (0, 1)  # the same-person pair comes first


@pytest.mark.parametrize("size, ups", [(32, 3), (48, 3), (64, 4), (128, 5)])
def test_network_shapes(size, ups):
    assert doublings(size) == ups
    g, e = LatentGenerator(size, 16, 4, 2), Encoder(size, 16, 4, 2)
    img = g(torch.randn(2, 16))
    assert img.shape == (2, 3, size, size) and img.abs().max() <= 1
    assert e(img).shape == (2, 16)
