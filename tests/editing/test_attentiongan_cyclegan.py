"""AttentionGAN and CycleGAN editors: exact resume, what they compute, and their `editor.params`."""

import json

import pytest
import torch

from editing.gan import CHECKPOINT, WEIGHTS
from editing.attentiongan import AttentionGanEditor, AttentionGanTrainer, AttentionGenerator, foreground
from editing.cyclegan import CycleGanEditor, CycleGanTrainer, HistoryBuffer
from pipeline.config import load_config
from _stores import make_originals_store

TRAINERS = {"attentiongan": AttentionGanTrainer, "cyclegan": CycleGanTrainer}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_originals_store(tmp_path_factory.mktemp("agcg") / "originals")


def _trainer(name, out_dir, iterations, params=()):
    cfg = load_config("tiny", [f"editor.name={name}", f"editor.iterations={iterations}", "editor.checkpoint_every=2",
                               "editor.sample_every=2", *params])
    return TRAINERS[name](attribute="eyeglasses", image_size=32, out_dir=out_dir, config=cfg.editor)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_resume_continues_exactly(name, store, tmp_path):
    quiet = lambda m: None  # noqa: E731
    straight = _trainer(name, tmp_path / "straight", 4).fit([store.root], progress=quiet)
    _trainer(name, tmp_path / "resumed", 2).fit([store.root], progress=quiet)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 2
    (tmp_path / "resumed" / WEIGHTS).unlink()
    log = []
    resumed = _trainer(name, tmp_path / "resumed", 4).fit([store.root], progress=log.append)
    assert any("resuming at iteration 2" in line for line in log)

    a = torch.load(straight / WEIGHTS, weights_only=True)
    b = torch.load(resumed / WEIGHTS, weights_only=True)
    nets = [k for k, v in a.items() if isinstance(v, dict) and k != "arch"]
    assert nets == (["generator"] if name == "attentiongan" else ["g_add", "g_remove"])
    for net in nets:
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    history = [json.loads(line) for line in (resumed / "losses.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert (resumed / "samples" / "step-000004.png").exists()


def test_attention_masks_sum_to_one_and_n_is_configurable():
    torch.manual_seed(0)
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([0.0, 1.0])
    for n in (2, 5):
        g = AttentionGenerator(conv_dim=8, downsamples=2, res_blocks=1, n=n).eval()
        out, attention = g(x, c)
        assert out.shape == x.shape and attention.shape == (2, n, 32, 32)
        assert torch.allclose(attention.sum(1), torch.ones(2, 32, 32), atol=1e-5)
        assert g.content[-2].out_channels == 3 * (n - 1)
        # the output is the proposals mixed by the foreground masks plus the input by the background one
        content = torch.tanh(g.content[:-1](g.encoder(torch.cat([x, c.view(-1, 1, 1, 1).expand(-1, 1, 32, 32)], 1))))
        mixed = (content.unflatten(1, (n - 1, 3)) * attention[:, :-1, None]).sum(1) + x * attention[:, -1:]
        assert torch.allclose(out, mixed, atol=1e-5)
        assert torch.allclose(foreground(attention), 1 - attention[:, -1:])
    with pytest.raises(ValueError, match="n >= 2"):
        AttentionGenerator(n=1)


def test_attentiongan_trains_with_n_from_params_and_edits(store, tmp_path):
    out = _trainer("attentiongan", tmp_path / "e", 2, ["editor.params={n: 3, lambda_pixel: 1.0}"]).fit(
        [store.root], progress=lambda m: None)
    assert json.loads((out / "editor.json").read_text())["arch"]["n"] == 3
    editor = AttentionGanEditor.load(out)
    assert editor.generator.n == 3
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    res = editor.edit(x, torch.tensor([0.0, 1.0, 1.0]))
    assert res.images.shape == x.shape and res.mask.shape == (3, 1, 32, 32)
    assert res.mask.min() >= 0 and res.mask.max() <= 1
    # the mask is the foreground share of the very generator that made the edit
    with torch.no_grad():
        _, attention = editor.generator(x.to(editor.dtype), torch.tensor([0.0, 1.0, 1.0]).to(editor.dtype))
    assert torch.equal(res.mask, foreground(attention.float()))
    with pytest.raises(FileNotFoundError, match="editor.pt"):
        AttentionGanEditor.load(tmp_path)


@pytest.mark.parametrize("name, params, key", [
    ("attentiongan", "{bogus: 1}", "bogus"), ("attentiongan", "{n: 1}", "'editor.params.n'"), ("attentiongan", "{lambda_tv: -1}", "lambda_tv"),
    ("cyclegan", "{lamda_cycle: 5}", "lamda_cycle"), ("cyclegan", "{pool_size: -1}", "pool_size"),
])
def test_bad_params_name_the_key(name, params, key, tmp_path):
    with pytest.raises(ValueError, match=key):
        _trainer(name, tmp_path, 2, [f"editor.params={params}"])


def test_cyclegan_routes_each_image_to_its_generator(store, tmp_path):
    out = _trainer("cyclegan", tmp_path / "e", 2).fit([store.root], progress=lambda m: None)
    editor = CycleGanEditor.load(out, precision="fp32")
    assert not editor.has_mask
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    res = editor.edit(x, torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert res.mask is None
    with torch.no_grad():
        added, removed = editor.g_add(x), editor.g_remove(x)
    assert not torch.allclose(added, removed)  # the two directions are different networks
    for i, gen in enumerate([added, removed, removed, added]):
        assert torch.allclose(res.images[i], gen[i].clamp(-1, 1), atol=1e-5), i
    with pytest.raises(FileNotFoundError, match="editor.pt"):
        CycleGanEditor.load(tmp_path)


def test_history_buffer_fills_then_swaps():
    pool = HistoryBuffer(3, 4)
    rng = torch.Generator().manual_seed(0)
    first = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, 4, 4)
    assert torch.equal(pool.query(first, rng), first)  # filling: the fakes pass through
    assert int(pool.count) == 3
    new = torch.full((200, 3, 4, 4), 9.0)
    out = pool.query(new, rng)
    old = out[:, 0, 0, 0] != 9
    assert 0 < old.sum() < 200  # about half are swapped for stored fakes (each stored one once)
    assert torch.equal(torch.sort(out[old, 0, 0, 0]).values, torch.tensor([0.0, 1.0, 2.0]))
    assert (pool.images == 9).all()
    assert torch.equal(HistoryBuffer(0, 4).query(new, rng), new)  # pool_size 0: no history
