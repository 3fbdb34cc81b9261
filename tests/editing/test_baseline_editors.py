"""The SaGAN paper's baselines: the StarGAN-style whole-image editor and the ResGAN-style residual editor."""

import json

import pytest
import torch

from editing.gan import CHECKPOINT, WEIGHTS
from editing.registry import get_plugin
from editing.resgan import ResganEditor, ResganTrainer, ResidualPair, resgan_iteration
from editing.networks import Discriminator, init_weights
from editing.stargan import StarganEditor, StarganTrainer, UnmaskedGenerator
from pipeline.config import ConfigError, load_config
from _stores import make_originals_store

TRAINERS = {"stargan": (StarganTrainer, "generator"), "resgan": (ResganTrainer, "generators")}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    return make_originals_store(tmp_path_factory.mktemp("baselines") / "originals").root


def _trainer(cls, out_dir, iterations, extra=()):
    cfg = load_config("tiny", [f"editor.iterations={iterations}", "editor.checkpoint_every=2", "editor.sample_every=2", *extra])
    return cls(attribute="eyeglasses", image_size=32, out_dir=out_dir, config=cfg.editor)


def _quiet(message):
    pass


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_resume_continues_exactly(name, originals, tmp_path):
    cls, key = TRAINERS[name]
    straight = _trainer(cls, tmp_path / "straight", 4).fit([originals], progress=_quiet)

    _trainer(cls, tmp_path / "resumed", 2).fit([originals], progress=_quiet)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 2
    (tmp_path / "resumed" / WEIGHTS).unlink()
    log = []
    resumed = _trainer(cls, tmp_path / "resumed", 4).fit([originals], progress=log.append)
    assert any("resuming at iteration 2" in line for line in log)

    a = torch.load(straight / WEIGHTS, weights_only=True)[key]
    b = torch.load(resumed / WEIGHTS, weights_only=True)[key]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    history = [json.loads(line) for line in (resumed / "losses.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert (resumed / "samples" / "step-000004.png").exists()
    meta = json.loads((resumed / "editor.json").read_text())
    assert meta["editor"] == name and meta["key"]["editor"] == name


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_loading_an_empty_directory_names_the_path(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / WEIGHTS)):
        get_plugin(name).editor.load(tmp_path)


# ---- StarGAN-style -----------------------------------------------------------------------------

def test_unmasked_generator_is_the_amn_alone():
    g = UnmaskedGenerator(8, 2, 1)
    assert all(k.startswith("amn.") for k in g.state_dict())  # no SAN weights at all
    x, c = torch.rand(3, 3, 32, 32) * 2 - 1, torch.tensor([0.0, 1.0, 1.0])
    out, mask = g(x, c)
    assert torch.equal(mask, torch.ones(3, 1, 32, 32))
    assert torch.equal(out, g.manipulate(x, c))  # the blend leaves the AMN output untouched


def test_stargan_trains_with_sagans_losses_and_regenerates_everywhere(originals, tmp_path):
    out = _trainer(StarganTrainer, tmp_path / "star", 2).fit([originals], progress=_quiet)
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    # SaGAN's loss terms, from SaGAN's code (sagan_iteration), with the mask a constant 1
    assert set(log[0]) == {"step", "d_adv", "d_cls", "d_gp", "g_adv", "g_cls", "g_dual", "g_id", "mask_mean"}
    assert all(h["mask_mean"] == 1.0 for h in log)

    editor = StarganEditor.load(out)
    assert not editor.has_mask and editor.attributes == ("eyeglasses",)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    res = editor.edit(x, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert res.mask is None
    assert ((res.images - x).abs() > 1e-3).float().mean() > 0.9  # no pixel is passed through from the input


def test_stargan_takes_no_params(tmp_path):
    with pytest.raises(ConfigError, match="editor.params.lambda_residual"):
        _trainer(StarganTrainer, tmp_path / "x", 2, ["editor.params.lambda_residual=1.0"])


# ---- ResGAN-style ------------------------------------------------------------------------------

def test_residual_generators_have_no_output_squashing():
    g = ResidualPair(8, 2, 1)
    for net in (g.g0, g.g1):
        torch.nn.init.constant_(net.main[-2].weight, 1.0)  # a huge last conv
    r = g(torch.rand(2, 3, 32, 32), torch.tensor([0.0, 1.0]))
    assert r.abs().max() > 1  # unbounded: no Tanh on the residual


@pytest.fixture(scope="module")
def resgan_dir(originals, tmp_path_factory):
    return _trainer(ResganTrainer, tmp_path_factory.mktemp("resgan"), 2).fit([originals], progress=_quiet)


def _zeroed(editor, which):
    for p in getattr(editor.generators, which).parameters():
        p.data.zero_()
    return editor


def test_each_target_uses_only_its_generator(resgan_dir):
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    add, remove = torch.ones(4), torch.zeros(4)
    before = ResganEditor.load(resgan_dir, precision="fp32")
    added, removed = before.edit(x, add).images, before.edit(x, remove).images
    assert not torch.equal(added, x) and not torch.equal(removed, x)

    no_g0 = _zeroed(ResganEditor.load(resgan_dir, precision="fp32"), "g0")
    assert torch.equal(no_g0.edit(x, add).images, added)  # target 1: G1 alone
    assert torch.equal(no_g0.edit(x, remove).images, x)   # G0 is silenced: zero residual, the input back
    no_g1 = _zeroed(ResganEditor.load(resgan_dir, precision="fp32"), "g1")
    assert torch.equal(no_g1.edit(x, remove).images, removed)
    assert torch.equal(no_g1.edit(x, add).images, x)


def test_mixed_batches_are_routed_per_image(resgan_dir):
    editor = ResganEditor.load(resgan_dir, precision="fp32")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    mixed = editor.edit(x, target).images
    for i in range(4):
        alone = editor.edit(x[i: i + 1], target[i: i + 1]).images
        assert torch.allclose(mixed[i: i + 1], alone, atol=1e-5), i
    assert editor.edit(x, target).mask is None and not editor.has_mask


def test_output_is_input_plus_residual_clamped(resgan_dir):
    editor = ResganEditor.load(resgan_dir, precision="fp32")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    target = torch.tensor([1.0, 0.0])
    with torch.no_grad():
        r = editor.generators(x, target)
    assert torch.allclose(editor.edit(x, target).images, (x + r).clamp(-1, 1), atol=1e-6)
    with torch.no_grad():
        editor.generators.g1.main[-2].weight.mul_(1e4)  # residuals far outside the image range
    out = editor.edit(x, torch.ones(2)).images
    assert out.min() == -1 and out.max() == 1


def test_resgan_params(tmp_path):
    assert _trainer(ResganTrainer, tmp_path / "a", 2).params.lambda_residual == pytest.approx(5e-4 * 3 * 128 * 128)
    assert _trainer(ResganTrainer, tmp_path / "b", 2, ["editor.params.lambda_residual=2.5"]).params.lambda_residual == 2.5
    with pytest.raises(ConfigError, match=r"editor\.params\.lambda_residul.*unknown key"):
        _trainer(ResganTrainer, tmp_path / "c", 2, ["editor.params.lambda_residul=2.5"])
    with pytest.raises(ConfigError, match=r"editor\.params\.lambda_residual.*greater than or equal to 0"):
        _trainer(ResganTrainer, tmp_path / "d", 2, ["editor.params.lambda_residual=-1"])


def test_residual_weight_reaches_the_generator_loss():
    """lambda_residual is the sparsity weight: a large one shrinks |r| where none does not."""
    x, c = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([1.0, 0.0, 1.0, 0.0])
    s = load_config("tiny").editor.sagan.model_copy(update={"lambda_dual": 0.0})  # the only pull toward r = 0
    g_res = {}
    for weight in (0.0, 1000.0):
        torch.manual_seed(0)
        g, d = ResidualPair(8, 2, 1), Discriminator(32, 8, 3)
        g.apply(init_weights), d.apply(init_weights)
        opt_g, opt_d = (torch.optim.Adam(m.parameters(), 1e-3, betas=(0.5, 0.999)) for m in (g, d))
        rng = torch.Generator().manual_seed(0)
        g_res[weight] = [resgan_iteration(g, d, opt_g, opt_d, lambda: (x, c), s, weight, 1, rng)["g_res"] for _ in range(4)]
    assert g_res[0.0][0] == g_res[1000.0][0]  # the same start: only the weight differs
    assert g_res[1000.0][-1] < 0.6 * g_res[1000.0][0] and g_res[1000.0][-1] < 0.6 * g_res[0.0][-1]
