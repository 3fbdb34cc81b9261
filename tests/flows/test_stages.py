"""The one list of stages, and the check of every registered name a config uses before any stage runs."""

import pytest

from flows.stages import STAGES, check_config, stage
from pipeline.config import ConfigError, load_config


def test_one_ordered_list_of_stages_with_the_identity_stage_after_the_verifiers():
    names = [s.name for s in STAGES]
    assert names == ["prepare data", "train editors", "score editors", "augment", "train verifiers",
                     "identity preservation", "evaluate", "report"]
    assert stage("train-verifiers") is stage("train verifiers")
    assert [s.name for s in STAGES if s.isolated] == ["train editors", "train verifiers"]
    with pytest.raises(KeyError, match="stages: prepare data"):
        stage("no such stage")


@pytest.mark.parametrize("override, key, available", [
    ("verifier.head=softmax", "verifier.head", "arcface, cosface"),
    ("verifier.arch=resnet9000", "verifier.arch", "resnet18"),
    ("editor.name=no-such-editor", "editor.name", "sagan"),
    ("verifier.arms=[baseline, aug-eyeglasses@nobody]", "verifier.arms", "identity"),
    ("evaluation.protocols=[celeba, nope]", "evaluation.protocols", "lfw"),
])
def test_unknown_registered_names_are_refused_with_the_key_and_the_choices(override, key, available):
    with pytest.raises(ConfigError, match=f"'{key}'.*{available}"):
        check_config(load_config("tiny", [override]))


def test_a_good_config_passes_unchanged():
    cfg = load_config("tiny")
    assert check_config(cfg) is cfg
