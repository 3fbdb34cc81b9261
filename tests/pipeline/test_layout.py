"""The one map of a run directory."""

from pipeline.config import load_config
from pipeline.layout import ALL, RunLayout


def test_paths_of_a_run(tmp_path):
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run")})
    layout = RunLayout(cfg)
    assert layout.originals == f"{tmp_path}/run/shards/originals"
    assert layout.augmented("eyeglasses") == f"{tmp_path}/run/shards/aug-eyeglasses"
    assert layout.augmented("eyeglasses", "stargan").endswith("/aug-eyeglasses@stargan")
    assert layout.augmented("eyeglasses", cfg.editor.name).endswith("/aug-eyeglasses")  # the run's editor: no suffix
    assert layout.editor_dir("eyeglasses") == tmp_path / "run" / "editors" / "sagan-eyeglasses"
    assert layout.editor_dir(ALL, "sagan_multi").name == "sagan_multi-all"
    assert layout.verifier_done("baseline", 2) == [tmp_path / "run" / "verifiers" / "baseline" / "seed-2" / "verifier.pt",
                                                  tmp_path / "run" / "verifiers" / "baseline" / "seed-2" / "training.json"]
    assert layout.judge == tmp_path / "run" / "judge" / "attribute_classifier.pt"


def test_shard_root_moves_only_the_shards(tmp_path):
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run"), "data.shard_root": "memory://bucket/x/"})
    layout = RunLayout(cfg)
    assert layout.originals == "memory://bucket/x/originals"
    assert layout.augment_done("smiling") == "memory://bucket/x/aug-smiling/augment_summary.json"
    assert layout.results == tmp_path / "run" / "results.json"


def test_synthetic_directory_names_only_changed_knobs(tmp_path):
    plain = RunLayout(load_config("tiny")).synthetic
    assert plain.name == "n24-k6-s32-l40-pauto-seed0"  # the original benchmark keeps its directory
    styled = RunLayout(load_config("tiny", ["data.synthetic.style.glasses=2", "data.synthetic.train_mixing=0"])).synthetic
    assert styled.name == "n24-k6-s32-l40-pauto-seed0-glasses2-trainmix0"
    extra = RunLayout(load_config("tiny", ["data.synthetic.extra_test_identities=5"])).synthetic
    assert extra.name == "n24-k6-s32-l40-pauto-seed0-xt5"


def test_of_run_reads_the_saved_config_wherever_the_run_moved(tmp_path):
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "old")})
    cfg.save(tmp_path / "moved")
    assert RunLayout.of_run(tmp_path / "moved").results == tmp_path / "moved" / "results.json"
