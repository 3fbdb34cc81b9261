"""Multi-attribute SaGAN: exact resume, the stage's pointer directories, attribute-conditioned masks, params."""

import json

import pytest
import torch

from editing.gan import CHECKPOINT, WEIGHTS
from editing.sagan_multi import MultiDiscriminator, MultiGenerator, SaganMultiEditor, SaganMultiTrainer, multi_iteration, parse_params
from editing.networks import init_weights
from editing.train import train_editor
from pipeline.layout import ALL, RunLayout
from pipeline.config import load_config
from _stores import make_originals_store

QUIET = lambda *_: None  # noqa: E731
TWO = "editor.attributes=[eyeglasses, smiling]"


def _trainer(tmp_path, name, iterations, *overrides):
    cfg = load_config("tiny", [f"editor.iterations={iterations}", "editor.checkpoint_every=2", "editor.sample_every=2",
                               "editor.name=sagan_multi", TWO, *overrides])
    return SaganMultiTrainer(attribute=ALL, image_size=32, out_dir=tmp_path / name, config=cfg.editor)


def test_resume_continues_exactly(tmp_path):
    store = make_originals_store(tmp_path / "originals")
    straight = _trainer(tmp_path, "straight", 4).fit([store.root], progress=QUIET)

    _trainer(tmp_path, "resumed", 2).fit([store.root], progress=QUIET)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 2
    (tmp_path / "resumed" / WEIGHTS).unlink()
    log = []
    resumed = _trainer(tmp_path, "resumed", 4).fit([store.root], progress=log.append)
    assert any("sagan_multi/all: resuming at iteration 2" in line for line in log)

    a = torch.load(straight / WEIGHTS, weights_only=True)["generator"]
    b = torch.load(resumed / WEIGHTS, weights_only=True)["generator"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    history = [json.loads(line) for line in (resumed / "losses.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert (resumed / "samples" / "step-000004.png").exists()


def test_a_model_of_other_attributes_is_not_reused(tmp_path):
    store = make_originals_store(tmp_path / "originals")
    _trainer(tmp_path, "m", 2).fit([store.root], progress=QUIET)
    with pytest.raises(ValueError, match=r"trained for attributes \['eyeglasses', 'smiling'\]"):
        _trainer(tmp_path, "m", 2, "editor.attributes=[eyeglasses, no_beard]").fit([store.root], progress=QUIET)
    (tmp_path / "m" / "editor.json").unlink()  # the checkpoint alone is refused too, before resuming
    with pytest.raises(ValueError, match="checkpoint.pt was trained for attributes"):
        _trainer(tmp_path, "m", 4, "editor.attributes=[smiling, eyeglasses]").fit([store.root], progress=QUIET)


def test_stage_trains_once_and_pointer_directories_load(tmp_path):
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run"),
                               "editor": {"name": "sagan_multi", "attributes": ["eyeglasses", "smiling"], "iterations": 2}})
    make_originals_store(tmp_path / "run" / "shards" / "originals")
    shared = train_editor(cfg, ALL, device="cpu", progress=QUIET)
    assert shared == RunLayout(cfg).editor_dir(ALL)
    meta = json.loads((shared / "editor.json").read_text())
    assert meta["editor"] == "sagan_multi" and meta["attribute"] == ALL and meta["iterations"] == 2
    assert meta["attributes"] == ["eyeglasses", "smiling"] and meta["arch"]["attributes"] == ["eyeglasses", "smiling"]
    assert meta["train_seconds"] > 0

    x = torch.rand(3, 3, 32, 32) * 2 - 1
    target = torch.tensor([0.0, 1.0, 1.0])
    whole = SaganMultiEditor.load(shared)
    assert whole.attributes == ("eyeglasses",)  # the shared directory binds the first attribute
    edits = {}
    for attribute in cfg.editor.attributes:
        pointer = RunLayout(cfg).editor_dir(attribute)
        assert not (pointer / WEIGHTS).exists()
        editor = SaganMultiEditor.load(pointer)
        assert editor.attributes == (attribute,) and editor.checkpoint_id == meta["checkpoint_id"]
        edits[attribute] = editor.edit(x, target)
        rebound = whole.for_attribute(attribute)
        assert rebound.attributes == (attribute,)
        assert torch.equal(rebound.edit(x, target).images, edits[attribute].images)
        assert torch.equal(rebound.edit(x, target).mask, edits[attribute].mask)
    assert not torch.equal(edits["eyeglasses"].images, edits["smiling"].images)  # the bound attribute is what is edited
    with pytest.raises(ValueError, match="no_beard"):
        whole.for_attribute("no_beard")

    # The training sample grid: input | (edit, mask) per attribute, one row per fixed face.
    from PIL import Image
    with Image.open(shared / "samples" / "step-000002.png") as grid:
        assert grid.width == 32 * (1 + 2 * 2)


def test_load_names_the_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="editor.pt"):
        SaganMultiEditor.load(tmp_path)
    (tmp_path / "smiling").mkdir()
    (tmp_path / "smiling" / "editor.json").write_text(json.dumps({"editor": "sagan_multi", "attribute": "smiling", "shared": "../gone"}))
    with pytest.raises(FileNotFoundError, match="gone"):
        SaganMultiEditor.load(tmp_path / "smiling")


def _net(k: int = 3) -> MultiGenerator:
    torch.manual_seed(0)
    g = MultiGenerator(k, conv_dim=8, downsamples=2, res_blocks=1)
    g.apply(init_weights)
    return g.eval()


@torch.no_grad()
def test_the_mask_depends_on_the_edited_attribute():
    g = _net()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    masks = [g.attend(x, torch.full((2,), k)) for k in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert (masks[a] - masks[b]).abs().max() > 1e-3, (a, b)


@torch.no_grad()
def test_the_condition_is_a_signed_one_hot():
    g = _net()
    seen = []
    g.amn.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 3:, 0, 0].clone()))
    san = []
    g.san.register_forward_pre_hook(lambda module, args: san.append(args[0][:, 3:, 0, 0].clone()))
    x = torch.zeros(3, 3, 8, 8)
    g(x, torch.tensor([0, 2, 2]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(seen[0], torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 0, 1]]))  # removal of 2 is not removal of 0
    assert torch.equal(san[0], torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 0, 1]]))


def test_discriminator_has_one_logit_per_attribute():
    d = MultiDiscriminator(32, 8, 3, num_attributes=4)
    src, cls = d(torch.zeros(5, 3, 32, 32))
    assert src.shape == (5, 1, 4, 4) and cls.shape == (5, 4)


def test_keep_others_weighs_in_only_when_set():
    s = load_config("tiny").editor.sagan
    x, labels = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([[0.0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]])

    def one_step(keep_others):
        g = _net().train()
        torch.manual_seed(1)
        d = MultiDiscriminator(32, 8, 3, 3)
        d.apply(init_weights)
        opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        losses = multi_iteration(g, d, opt_g, opt_d, lambda: (x, labels), s, parse_params({"keep_others": keep_others}), 1,
                                 torch.Generator().manual_seed(0))
        return losses, torch.cat([p.detach().flatten() for p in g.parameters()])

    off, g_off = one_step(0.0)
    on, g_on = one_step(1.0)
    assert off["g_keep"] == pytest.approx(on["g_keep"]) and off["g_keep"] > 0  # logged either way
    assert not torch.equal(g_off, g_on)


def test_params_are_validated():
    assert parse_params({}).keep_others == 0.0
    with pytest.raises(ValueError, match="keep_other"):
        parse_params({"keep_other": 1.0})
    with pytest.raises(ValueError, match="keep_others"):
        parse_params({"keep_others": -1})
    cfg = load_config("tiny", ["editor.name=sagan_multi", "editor.params={mask_weight: 2}"])
    with pytest.raises(ValueError, match="mask_weight"):
        SaganMultiTrainer(attribute=ALL, image_size=32, out_dir="unused", config=cfg.editor)
    with pytest.raises(ValueError, match="'all'"):
        SaganMultiTrainer(attribute="eyeglasses", image_size=32, out_dir="unused", config=load_config("tiny").editor)


def test_batches_balance_on_the_rarest_attribute(tmp_path):
    labels = torch.tensor([[1.0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1]])
    cfg = load_config("tiny", ["editor.attributes=[eyeglasses, smiling, no_beard]", "editor.balance_attribute=true"])
    trainer = SaganMultiTrainer(attribute=ALL, image_size=32, out_dir=tmp_path, config=cfg.editor)
    assert torch.equal(trainer.balance_on(labels), labels[:, 1])  # 1 in 6 without 'smiling': the rarest value
    labels[:, 2] = 1
    with pytest.raises(ValueError, match="6 training images with no_beard, 0 without"):
        trainer.balance_on(labels)
