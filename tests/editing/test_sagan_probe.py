"""`faceaug editors probe`: a trained SaGAN's AMN output re-blended through other masks, judged twice."""

import pytest
import torch

from editing.originals import load_originals
from pipeline.images import batch_to_model_range as to_float
from editing.evaluate import region_masks
from editing.judge import train_judge
from editing.gan import CHECKPOINT
from editing.sagan import SaganTrainer
from editing.sagan_probe import VARIANTS, load_sagan_checkpoint, probe_sagan, probe_table
from pipeline.config import load_config
from _stores import make_originals_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    store = make_originals_store(tmp / "originals", identities=8, per_identity=6, test_identities=3)
    cfg = load_config("tiny", ["editor.iterations=3", "editor.checkpoint_every=3"])
    out = SaganTrainer(attribute="eyeglasses", image_size=32, out_dir=tmp / "sagan", config=cfg.editor).fit([store.root], progress=lambda m: None)
    train, test = load_originals([store.root], "train"), load_originals([store.root], "test")
    judge = train_judge((train.images, train.attributes), (test.images, test.attributes), tmp / "judge.pt",
                        steps=5, batch_size=8, progress=lambda m: None)
    return out, test, judge


def test_probe_reblends_the_generators_own_output(trained):
    out, test, judge = trained
    result, rows = probe_sagan(out, "eyeglasses", test, judge)
    labels = test.labels("eyeglasses")
    assert result["iteration"] == 3 and result["images"] == len(labels)
    assert list(result["variants"]) == list(VARIANTS)

    # "no edit" is the judge's own verdict on the unedited faces, toward the flipped label.
    p = judge.predict(to_float(test.images), "eyeglasses")
    no_edit = result["variants"]["no edit"]["judge"]
    assert no_edit["added"]["success_rate"] == pytest.approx(((p > 0.5) & (labels < 0.5)).sum().item() / (labels < 0.5).sum().item())
    assert no_edit["removed"]["success_rate"] == pytest.approx(((p <= 0.5) & (labels > 0.5)).sum().item() / (labels > 0.5).sum().item())
    assert result["variants"]["no edit"]["mean_abs_change_outside_region"] == 0.0

    # Blending through the true region cannot change a pixel outside it; the own-mask blend is G(I, c) (eq. 7).
    assert result["variants"]["true region"]["mean_abs_change_outside_region"] == 0.0
    g, d, _ = load_sagan_checkpoint(out)
    with torch.inference_mode():
        x = to_float(test.images)
        own, mask = g(x, 1 - labels)
        p_d = torch.sigmoid(d(own)[1])
    region = region_masks(test.regions, "eyeglasses")
    change_outside = ((own - x).abs().mean(1, keepdim=True) * ~region).sum().item() / (~region).sum().item()
    assert result["variants"]["own mask"]["mean_abs_change_outside_region"] == pytest.approx(change_outside, rel=1e-5)
    d_added = result["variants"]["own mask"]["discriminator"]["added"]["success_rate"]
    assert d_added == pytest.approx(((p_d > 0.5) & (labels < 0.5)).sum().item() / (labels < 0.5).sum().item())
    assert result["mask_inside_region"]["mean"] == pytest.approx((mask * region).sum().item() / region.sum().item(), rel=1e-5)
    assert 0.0 <= result["discriminator_balanced_accuracy_on_real_test"] <= 1.0

    # The grid: input | 4 blends | mask, half the rows without glasses and half with.
    assert rows and all(len(r) == 6 for r in rows)
    assert "| own mask |" in probe_table(result) and "| true region |" in probe_table(result)


def test_probe_errors_name_the_file(trained, tmp_path):
    out, test, judge = trained
    with pytest.raises(ValueError, match="edits 'eyeglasses', not 'smiling'"):
        probe_sagan(out, "smiling", test, judge)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / CHECKPOINT)):
        probe_sagan(tmp_path, "eyeglasses", test, judge)
    torch.save({"step": 1}, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="not written by the sagan trainer"):
        probe_sagan(tmp_path, "eyeglasses", test, judge)
    no_regions = type(test)(test.images, test.attributes, test.identities, None, test.sample_ids)
    with pytest.raises(ValueError, match="ground-truth attribute regions"):
        probe_sagan(out, "eyeglasses", no_regions, judge)
