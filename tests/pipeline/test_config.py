import json

import pytest

from pipeline.config import PROFILES, ConfigError, RunConfig, load_config, parse_overrides, read_config


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_loads(profile):
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert str(cfg.output_dir) == f"data/runs/{profile}"


def test_profiles_differ_where_they_should():
    tiny, demo, paper = load_config("tiny"), load_config("demo"), load_config("paper")
    assert tiny.data.image_size < demo.data.image_size < paper.data.image_size == 128
    evidence = load_config("evidence")
    assert set(evidence.editor.attributes) == {"eyeglasses", "mouth_slightly_open", "smiling", "no_beard"}
    assert demo.data.source == "synthetic" and paper.data.source == "celeba"
    assert len(evidence.verifier.seeds) >= 3
    # every edited arm beside its no-edit control; on the synthetic benchmark also its positive control
    for cfg in (demo, evidence, paper):
        edited = [a for a in cfg.verifier.arms if a != "baseline" and "@" not in a]
        assert edited and all(f"{a}@identity" in cfg.verifier.arms for a in edited)
    assert all(f"aug-{a}@counterfactual" in evidence.verifier.arms for a in evidence.editor.attributes)
    assert not any("counterfactual" in a for a in paper.verifier.arms)  # it exists only for the synthetic benchmark
    # the editors' deviations from the paper stay off in the paper profile
    assert paper.editor.select_every == 0 and paper.editor.sagan.cls_on_edits == 0 and paper.editor.sagan.identity_trains_mask


def test_paper_profile_has_the_papers_hyperparameters():
    e = load_config("paper").editor
    assert (e.batch_size, e.lr, e.betas, e.n_critic) == (16, 2e-4, (0.5, 0.999), 3)
    s = e.sagan
    assert (s.g_conv_dim, s.g_downsamples, s.g_res_blocks, s.d_conv_dim, s.d_layers) == (32, 3, 4, 32, 6)
    assert (s.lambda_gp, s.lambda_dual, s.lambda_identity) == (10, 20, 100)
    assert s.mask_l1 == 0 and s.mask_tv == 0  # the paper has no mask regulariser


def test_overrides_are_typed_and_nested():
    cfg = load_config("tiny", ["data.image_size=48", "editor.attributes=[smiling, no_beard]", "verifier.seeds=[1,2]"])
    assert cfg.data.image_size == 48
    assert cfg.editor.attributes == ("smiling", "no_beard")
    assert cfg.verifier.seeds == (1, 2)
    assert load_config("tiny", {"data.image_size": 40}).data.image_size == 40
    assert load_config("tiny", {"data": {"image_size": 40}}).data.image_size == 40


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.imagesize=3", "data.imagesize"),
        ("data.image_size=3", "data.image_size"),
        ("editor.attributes=[glasses]", "editor.attributes"),
        ("verifier.arms=[aug-hat]", "verifier.arms"),
        ("bogus=1", "bogus"),
    ],
)
def test_bad_keys_and_values_are_rejected_with_the_key_named(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config("tiny", [override])


def test_unknown_profile_and_malformed_override():
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["no-equals-sign"])


def test_real_source_needs_paths():
    with pytest.raises(ConfigError, match="celeba_dir"):
        load_config("tiny", ["data.source=celeba"])


def test_config_is_frozen_and_round_trips(tmp_path):
    cfg = load_config("demo", ["seed=7"])
    with pytest.raises(Exception):
        cfg.seed = 8  # type: ignore[misc]
    path = cfg.save(tmp_path)
    assert json.loads(path.read_text())["seed"] == 7
    assert read_config(tmp_path) == cfg
    assert isinstance(read_config(path), RunConfig)
