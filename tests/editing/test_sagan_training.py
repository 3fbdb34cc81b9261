"""SaGAN training: checkpoints, exact resume, sample grids, and the editor it produces."""

import json

import torch

from editing.gan import CHECKPOINT, WEIGHTS
from editing.sagan import SaganEditor, SaganTrainer
from pipeline.config import load_config
from _stores import make_originals_store


def _trainer(tmp_path, name, iterations, checkpoint_every=2):
    cfg = load_config("tiny", [f"editor.iterations={iterations}", f"editor.checkpoint_every={checkpoint_every}", "editor.sample_every=2"])
    return SaganTrainer(attribute="eyeglasses", image_size=32, out_dir=tmp_path / name, config=cfg.editor)


def test_resume_continues_exactly(tmp_path):
    store = make_originals_store(tmp_path / "originals")
    straight = _trainer(tmp_path, "straight", 4).fit([store.root], progress=lambda m: None)

    # Train 2 iterations, then a new trainer asked for 4 resumes from the checkpoint.
    _trainer(tmp_path, "resumed", 2).fit([store.root], progress=lambda m: None)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 2
    (tmp_path / "resumed" / WEIGHTS).unlink()
    log = []
    resumed = _trainer(tmp_path, "resumed", 4).fit([store.root], progress=log.append)
    assert any("resuming at iteration 2" in line for line in log)

    a = torch.load(straight / WEIGHTS, weights_only=True)["generator"]
    b = torch.load(resumed / WEIGHTS, weights_only=True)["generator"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    history = [json.loads(line) for line in (resumed / "losses.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4]  # logged once each, none lost or repeated
    assert (resumed / "samples" / "step-000004.png").exists()


def test_trained_editor_loads_and_edits(tmp_path):
    store = make_originals_store(tmp_path / "originals")
    out = _trainer(tmp_path, "e", 2).fit([store.root], progress=lambda m: None)
    meta = json.loads((out / "editor.json").read_text())
    assert meta["attribute"] == "eyeglasses" and meta["iterations"] == 2
    editor = SaganEditor.load(out)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    res = editor.edit(x, torch.tensor([0.0, 1.0, 1.0]))
    assert res.images.shape == x.shape and res.mask.shape == (3, 1, 32, 32)
    assert res.images.min() >= -1 and res.images.max() <= 1
    assert torch.allclose(res.images, editor.edit(x, torch.tensor([0.0, 1.0, 1.0])).images)
    # re-running fit on a finished editor reuses it
    log = []
    _trainer(tmp_path, "e", 2).fit([store.root], progress=log.append)
    assert any("already trained" in line for line in log)


def test_cls_on_edits_is_keyed_only_when_used(tmp_path):
    """An option added after runs were keyed: at its default the key is what it was, so old checkpoints resume."""
    from editing.gan import training_key

    assert "cls_on_edits" not in training_key(load_config("tiny").editor, 32, "sagan")["sagan"]
    assert training_key(load_config("tiny", ["editor.sagan.cls_on_edits=1"]).editor, 32, "sagan")["sagan"]["cls_on_edits"] == 1.0


def test_cls_on_edits_teaches_the_attribute_head_that_edits_keep_their_source_label():
    import torch.nn.functional as F

    from editing.losses import critic_update
    from editing.networks import Discriminator, init_weights

    def train(option: float) -> float:
        torch.manual_seed(0)
        d = Discriminator(32, 8, 3)
        d.apply(init_weights)
        opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
        s = load_config("tiny", [f"editor.sagan.cls_on_edits={option}"]).editor.sagan
        gen = torch.Generator().manual_seed(0)
        x, fake = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1, torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1
        c_org = torch.tensor([0.0, 1.0] * 4)
        for _ in range(60):
            critic_update(d, opt, x, c_org, fake, s, gen, torch.autocast("cpu", enabled=False))
        with torch.no_grad():
            return F.binary_cross_entropy_with_logits(d(fake)[1], c_org).item()

    # Paper (off): the head never sees the edits' labels; with the option it learns them.
    off, on = train(0.0), train(1.0)
    assert off > 0.6 and on < 0.6 * off


def test_instance_noise_keeps_the_attribute_head_from_reading_a_faint_change():
    """d_noise (not in the paper): on smooth faces, a stripe of amplitude 0.03 is learnt as 'the attribute' by
    a clean discriminator (cross-entropy near 0) but not by one that sees every image through noise of sd 0.5
    (cross-entropy near chance, log 2 = 0.69)."""
    import torch.nn.functional as F

    from editing.losses import critic_update
    from editing.networks import Discriminator, init_weights

    labels = torch.tensor([0.0, 1.0] * 8)
    face = torch.linspace(-0.5, 0.5, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)

    def batch(gen):
        x = face + 0.01 * torch.randn(16, 3, 32, 32, generator=gen)
        x[labels > 0.5, :, 14:16, :] += 0.03  # the faint "attribute"
        return x

    def train(noise: float) -> float:
        torch.manual_seed(0)
        d = Discriminator(32, 8, 3)
        d.apply(init_weights)
        opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
        s = load_config("tiny", [f"editor.sagan.d_noise={noise}", "editor.sagan.lambda_gp=0"]).editor.sagan
        rng, data = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
        for _ in range(60):
            x = batch(data)
            critic_update(d, opt, x, labels, x.clone(), s, rng, torch.autocast("cpu", enabled=False))
        with torch.no_grad():
            return F.binary_cross_entropy_with_logits(d(batch(data))[1], labels).item()

    clean, noisy = train(0.0), train(0.5)
    assert clean < 0.05 and noisy > 0.6, (clean, noisy)


def test_instance_noise_resumes_exactly_and_is_keyed(tmp_path):
    from editing.gan import training_key

    store = make_originals_store(tmp_path / "originals")

    def trainer(name, iterations):
        cfg = load_config("tiny", [f"editor.iterations={iterations}", "editor.checkpoint_every=2", "editor.sagan.d_noise=0.2"])
        return SaganTrainer(attribute="eyeglasses", image_size=32, out_dir=tmp_path / name, config=cfg.editor)

    straight = trainer("straight", 4).fit([store.root], progress=lambda m: None)
    trainer("resumed", 2).fit([store.root], progress=lambda m: None)
    (tmp_path / "resumed" / WEIGHTS).unlink()
    resumed = trainer("resumed", 4).fit([store.root], progress=lambda m: None)
    a = torch.load(straight / WEIGHTS, weights_only=True)["generator"]
    b = torch.load(resumed / WEIGHTS, weights_only=True)["generator"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "d_noise" not in training_key(load_config("tiny").editor, 32, "sagan")["sagan"]
    assert training_key(load_config("tiny", ["editor.sagan.d_noise=0.2"]).editor, 32, "sagan")["sagan"]["d_noise"] == 0.2
