"""A run whose shard datasets live on another fsspec filesystem (object storage in production; fsspec's
in-memory filesystem here): every stage reads and writes them through their URLs, nothing lands in
<output_dir>/shards, and the data is the same as a local run's."""

from pipeline.config import load_config
from pipeline.shards import ShardStore
from flows.run import run_all
from pipeline.layout import RunLayout


def test_whole_run_with_shards_on_an_fsspec_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = "memory://faceaug-test-run/shards"
    # workers=1: the stages run in this process, which is what can see fsspec's memory filesystem
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run"), "workers": 1, "data.shard_root": root})
    out = run_all(cfg, progress=lambda m: None)
    assert out["report"].endswith("report.html") and (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "shards").exists()
    for dataset in ("originals", "lfw", "aug-eyeglasses"):
        store = ShardStore(f"{root}/{dataset}")
        report = store.verify()
        assert report.ok and store.num_rows() > 0, report.format()
    aug = ShardStore(f"{root}/aug-eyeglasses")
    assert aug.read_bytes("augment_summary.json") is not None
    train = ShardStore(f"{root}/originals").read_table(columns=["split"], filter_split="train").num_rows
    assert aug.num_rows() == 3 * train


def test_an_arm_can_augment_with_another_editor(tmp_path, monkeypatch):
    """`aug-<attribute>@<editor>` arms put other editors' augmentation into the same experiment and report."""
    import json

    monkeypatch.chdir(tmp_path)
    arms = ["baseline", "aug-eyeglasses", "aug-eyeglasses@stargan"]
    cfg = load_config("tiny", {"output_dir": str(tmp_path / "run"), "workers": 1, "verifier": {"threads": 1, "arms": arms}})
    assert cfg.editor_plan() == {"sagan": ["eyeglasses"], "stargan": ["eyeglasses"]}
    run_all(cfg, progress=lambda m: None)
    other = ShardStore(RunLayout(cfg).shards("aug-eyeglasses@stargan")).read_table(columns=["edit_kind", "editor"]).to_pylist()
    assert {r["editor"] for r in other if r["edit_kind"] != "original"} == {"stargan"}
    own = ShardStore(RunLayout(cfg).shards("aug-eyeglasses")).read_table(columns=["edit_kind", "editor"]).to_pylist()
    assert {r["editor"] for r in own if r["edit_kind"] != "original"} == {"sagan"}
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(report["results"]["arms"]) == set(arms)
    assert "aug-eyeglasses@stargan" in report["results"]["differences"]
    assert (tmp_path / "run" / "editors" / "stargan-eyeglasses" / "evaluation.json").exists()
