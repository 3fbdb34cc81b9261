"""Margin heads with known answers; verifier training, exact resume, budgets, embeddings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pipeline.config import VerifierConfig
from recognition.heads import ArcFaceHead, CosFaceHead, make_head
from recognition.embedding import embed, embed_store, load_verifier
from recognition.verifier import CHECKPOINT, TRAINING_JSON, WEIGHTS, Verifier, lr_at, total_steps, train_verifier
from _stores import make_originals_store

SIZE = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread: on a busy 2-core machine two threads per process make each step ~15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- heads -------------------------------------------------------------------


def _head_at(head, cos_target: float):
    """Embedding at angle acos(cos_target) from class 0's weight, orthogonal to class 1's."""
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 3.0  # normalisation makes the scale irrelevant
        head.weight[1, 1] = 0.5
    theta = math.acos(cos_target)
    emb = torch.zeros(1, head.embedding_dim)
    emb[0, 0], emb[0, 2] = math.cos(theta) * 7, math.sin(theta) * 7
    return emb


def test_cosface_known_answers():
    head = CosFaceHead(4, 2, scale=30, margin=0.35)
    emb = _head_at(head, 1.0)  # embedding = class 0 weight direction
    logits = head(emb, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(30 * (1 - 0.35), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-5)
    # The margin applies to the target class only.
    logits = head(emb, torch.tensor([1]))
    assert logits[0, 0].item() == pytest.approx(30.0, abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(-30 * 0.35, abs=1e-4)
    emb = _head_at(head, 0.6)
    assert head(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(30 * (0.6 - 0.35), abs=1e-4)


def test_arcface_known_answers_and_threshold():
    head = ArcFaceHead(4, 2, scale=64, margin=0.5)
    for c in (1.0, 0.6, 0.0):
        emb = _head_at(head, c)
        got = head(emb, torch.tensor([0]))[0, 0].item()
        assert got == pytest.approx(64 * math.cos(math.acos(c) + 0.5), abs=1e-3)
        assert head(emb, torch.tensor([1]))[0, 0].item() == pytest.approx(64 * c, abs=1e-3)
    # Past θ > π − m, cos(θ + m) would rise again; the target logit is cos θ − m·sin(m) instead.
    c = math.cos(math.pi - 0.2)
    emb = _head_at(head, c)
    assert head(emb, torch.tensor([0]))[0, 0].item() == pytest.approx(64 * (c - math.sin(0.5) * 0.5), abs=1e-3)
    easy = ArcFaceHead(4, 2, scale=1, margin=0.5, easy_margin=True)
    assert easy(_head_at(easy, -0.3), torch.tensor([0]))[0, 0].item() == pytest.approx(-0.3, abs=1e-5)


def test_make_head():
    assert isinstance(make_head("cosface", 8, 3, scale=30, margin=0.35), CosFaceHead)
    assert isinstance(make_head("arcface", 8, 3, scale=64, margin=0.5), ArcFaceHead)
    from pipeline.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown verifier head 'softmax'. Available: arcface, cosface"):
        make_head("softmax", 8, 3, scale=1, margin=0)


def test_schedule_and_budgets():
    assert lr_at(0, base_lr=0.1, warmup=4, total=10) == pytest.approx(0.025)
    assert lr_at(3, base_lr=0.1, warmup=4, total=10) == pytest.approx(0.1)
    assert lr_at(4, base_lr=0.1, warmup=4, total=10) == pytest.approx(0.1)
    assert lr_at(7, base_lr=0.1, warmup=4, total=10) == pytest.approx(0.05)
    cfg = VerifierConfig(steps=123, batch_size=8, epochs=3)
    assert total_steps(cfg, 1000) == total_steps(cfg, 10) == 123
    ep = cfg.model_copy(update={"budget": "equal_epochs"})
    assert total_steps(ep, 17) == 3 * 3 and total_steps(ep, 16) == 3 * 2


# -- training ----------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("verifier") / "originals"
    make_originals_store(root, identities=6, per_identity=4, size=SIZE)  # 16 train rows, 4 identities
    return str(root)


def _cfg(**kw):
    base = dict(embedding_dim=16, steps=6, batch_size=8, warmup_steps=2, lr=0.05, checkpoint_every=3, threads=1)
    return VerifierConfig(**{**base, **kw})


def _weights(out):
    return torch.load(out / WEIGHTS, map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def straight(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train_verifier(sources=[(store, None)], cfg=_cfg(), image_size=SIZE, out_dir=out, seed=0, device="cpu",
                   progress=lambda m: None)
    return out


def test_training_writes_outputs(straight):
    info = json.loads((straight / TRAINING_JSON).read_text())
    assert info["steps"] == 6 and info["budget"] == "equal_steps" and info["samples_seen"] == 48
    assert info["num_samples"] == 16 and info["num_classes"] == 4 and info["epochs_seen"] == 3
    assert len(info["loss_curve"]) == 6 and all(np.isfinite(info["loss_curve"]))
    assert info["images_per_s"] > 0
    state = torch.load(straight / WEIGHTS, map_location="cpu", weights_only=True)
    assert state["arch"] == {"arch": "resnet18", "embedding_dim": 16, "small_input": 1}
    assert state["num_classes"] == 4 and state["label_identities"] == [1, 2, 3, 4]
    ckpt = torch.load(straight / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["loader"] == {"epoch": 3, "offset": 0, "samples_seen": 48}


def test_resume_is_exact_and_finished_run_is_reused(store, straight, tmp_path):
    out = tmp_path / "resumed"

    def interrupt(msg):
        if "step 5/6" in msg:  # the checkpoint is at step 3; steps 4-5 are lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_verifier(sources=[(store, None)], cfg=_cfg(), image_size=SIZE, out_dir=out, seed=0, device="cpu",
                       progress=interrupt)
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 3 and not (out / WEIGHTS).exists()
    messages = []
    train_verifier(sources=[(store, None)], cfg=_cfg(), image_size=SIZE, out_dir=out, seed=0, device="cpu",
                   progress=messages.append)
    assert any("resuming at step 3/6" in m for m in messages)
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((out / TRAINING_JSON).read_text())["loss_curve"] == \
        json.loads((straight / TRAINING_JSON).read_text())["loss_curve"]
    # A finished run is reused; different settings in the same directory are refused.
    messages.clear()
    train_verifier(sources=[(store, None)], cfg=_cfg(), image_size=SIZE, out_dir=out, seed=0, device="cpu",
                   progress=messages.append)
    assert messages == [f"verifier[resumed]: already trained ({out})"]
    with pytest.raises(ValueError, match="other settings"):
        train_verifier(sources=[(store, None)], cfg=_cfg(), image_size=SIZE, out_dir=out, seed=1, device="cpu",
                       progress=messages.append)


def test_bf16_precision_trains_and_is_part_of_the_key(store, straight, tmp_path):
    from recognition.verifier import _training_key

    # `auto` leaves the key as it was before the option existed, so older checkpoints still resume.
    assert "precision" not in _training_key(_cfg()) and _training_key(_cfg(precision="bf16"))["precision"] == "bf16"
    out = tmp_path / "bf16"
    train_verifier(sources=[(store, None)], cfg=_cfg(precision="bf16"), image_size=SIZE, out_dir=out, seed=0,
                   device="cpu", progress=lambda m: None)
    info = json.loads((out / TRAINING_JSON).read_text())
    assert info["config"]["precision"] == "bf16" and all(np.isfinite(info["loss_curve"]))
    a, b = _weights(straight), _weights(out)
    assert all(v.dtype == a[k].dtype for k, v in b.items())  # fp32 master weights
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # bf16 changes the numbers
    with pytest.raises(ValueError, match="other settings"):  # an fp32 run's directory is not reused for bf16
        train_verifier(sources=[(store, None)], cfg=_cfg(precision="bf16"), image_size=SIZE, out_dir=straight,
                       seed=0, device="cpu", progress=lambda m: None)


def test_equal_epochs_budget(store, tmp_path):
    cfg = _cfg(budget="equal_epochs", epochs=2, steps=999, checkpoint_every=100, head="arcface", margin=0.5)
    train_verifier(sources=[(store, ("original",))], cfg=cfg, image_size=SIZE, out_dir=tmp_path, seed=0,
                   device="cpu", progress=lambda m: None)
    info = json.loads((tmp_path / TRAINING_JSON).read_text())
    assert info["steps"] == 2 * math.ceil(16 / 8) == 4
    assert info["budget"] == "equal_epochs" and info["epochs"] == 2 and info["samples_seen"] == 32


# -- embeddings --------------------------------------------------------------


def test_flip_averaged_embeddings():
    torch.manual_seed(0)
    model = Verifier("resnet18", 16, small_input=True)
    x = torch.rand(5, 3, SIZE, SIZE) * 2 - 1
    e = embed(model, x, batch_size=3)
    assert e.shape == (5, 16) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed(model, x.flip(-1)), e, atol=1e-5)
    # Not just any constant: different images embed differently.
    assert np.abs(e[0] - e[1]).max() > 1e-3


def test_embed_store_one_row_per_sample(store, straight):
    model = load_verifier(straight, "cpu")
    assert not model.training
    ids, identities, emb = embed_store(model, store, batch_size=7)
    assert len(ids) == len(set(ids)) == len(identities) == emb.shape[0] == 24 and emb.shape[1] == 16
    test_ids, test_identities, test_emb = embed_store(model, store, split="test")
    assert len(test_ids) == 8 and set(test_identities.tolist()) == {5, 6}
    np.testing.assert_allclose(np.linalg.norm(test_emb, axis=1), 1.0, atol=1e-5)
    # Batching does not change the result: the store's rows match embedding them directly.
    idx = [ids.index(s) for s in test_ids]
    np.testing.assert_allclose(emb[idx], test_emb, atol=1e-5)


def _copy_store(src, dst, change=None):
    """The rows of `src` written again as a new dataset at `dst`, each passed through `change` first."""
    from pipeline.shards import ShardStore
    from pipeline.samples import image_bytes

    source = ShardStore(src)
    out = ShardStore(str(dst), metadata={"dataset": "copy"})
    for entry, table in source.iter_tables():
        rows = table.to_pylist()
        for row, blob in zip(rows, image_bytes(table["image"]).to_pylist()):
            row["image"] = blob
        out.write_shard(entry.name, [change(r) if change else r for r in rows])
    return out.path


def test_an_arm_with_the_same_training_stream_as_a_finished_one_reuses_its_verifier(store, straight, tmp_path):
    """The no-edit control of two attributes trains on the same copies: the second is not trained again. Edit
    metadata does not enter the stream's fingerprint; one changed image does."""
    from pipeline.loader import ShardImageDataset

    def relabel(row):  # other attribute labels and provenance, the same images and identities
        row["attributes"] = [1 - a for a in row["attributes"]]
        return row

    def one_pixel(row):
        if row["sample_id"].startswith("000001"):
            from pipeline.images import decode_rgb, encode_png

            arr = decode_rgb(row["image"], "test").copy()
            arr[0, 0, 0] ^= 1
            row["image"] = encode_png(arr)
        return row

    same = _copy_store(store, tmp_path / "same", relabel)
    other = _copy_store(store, tmp_path / "other", one_pixel)
    fingerprint = lambda path: ShardImageDataset(path, image_size=SIZE).fingerprint()  # noqa: E731
    assert fingerprint(same) == fingerprint(store) != fingerprint(other)

    log = []
    reused = train_verifier(sources=[(same, None)], cfg=_cfg(), image_size=SIZE, out_dir=tmp_path / "twin", seed=0,
                            device="cpu", progress=log.append, twins=[tmp_path / "missing", straight])
    record = json.loads((reused / TRAINING_JSON).read_text())
    assert record["reused_from"] == str(straight) and any("reused, not trained again" in m for m in log)
    assert record["key"]["sources"] == [[str(same), None]] and record["stream"] == fingerprint(store)
    assert all(torch.equal(a, b) for a, b in zip(_weights(reused).values(), _weights(straight).values()))
    assert not (reused / CHECKPOINT).exists()  # nothing was trained

    trained = train_verifier(sources=[(other, None)], cfg=_cfg(), image_size=SIZE, out_dir=tmp_path / "trained", seed=0,
                             device="cpu", progress=lambda m: None, twins=[straight])
    assert "reused_from" not in json.loads((trained / TRAINING_JSON).read_text())  # another stream: trained
    elsewhere = train_verifier(sources=[(same, None)], cfg=_cfg(), image_size=SIZE, out_dir=tmp_path / "seed1", seed=1,
                               device="cpu", progress=lambda m: None, twins=[straight])
    assert "reused_from" not in json.loads((elsewhere / TRAINING_JSON).read_text())  # another seed: trained
