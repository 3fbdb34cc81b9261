"""The verification experiment and report on the tiny profile: real stages end to end, fast."""

import json

import pytest

from editing.augment import augment_stage
from editing.train import train_editor
from pipeline.config import load_config
from pipeline.ingest import prepare_data
from recognition.experiment import arm_sources, check_identities, evaluate_run, run_experiment
from recognition.report import write_report

QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("tinyrun")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config("tiny", {"output_dir": str(root / "run"), "workers": 2, "verifier": {"threads": 1}})
        prepare_data(cfg, progress=QUIET)
        train_editor(cfg, "eyeglasses", device="cpu", progress=QUIET)
        augment_stage(cfg, "eyeglasses", device="cpu", progress=QUIET)
        results = run_experiment(cfg, device="cpu", progress=QUIET)
        yield cfg, results
    finally:
        os.chdir(cwd)


def test_results_cover_every_arm_metric_and_difference(tiny_run):
    cfg, results = tiny_run
    assert set(results["arms"]) == {"baseline", "aug-eyeglasses"}
    assert results["budget"] == "equal_steps" and results["steps"] == cfg.verifier.steps
    for arm, r in results["arms"].items():
        assert all(t["steps"] == cfg.verifier.steps for t in r["training"])  # equal compute across arms
        for test_set in ("celeba", "lfw"):
            for name in ("auc", "eer", "tar@far=0.001", "tar@far=0.01"):
                m = r[test_set]["metrics"][name]
                assert m["ci_low"] <= m["mean"] <= m["ci_high"] or m["mean"] is None
            assert len(r[test_set]["roc"]["tar_mean"]) == len(results["far_grid"])
        assert 0 <= r["lfw_10fold"]["accuracy_mean"] <= 1
    d = results["differences"]["aug-eyeglasses"]["celeba"]["auc"]
    assert d["verdict"] in ("gain", "loss", "no measurable difference")
    assert (d["verdict"] == "no measurable difference") == (d["ci_low"] <= 0 <= d["ci_high"])


def test_arms_use_the_right_data(tiny_run):
    cfg, _ = tiny_run
    assert arm_sources(cfg, "baseline")[0][0].endswith("shards/originals")
    assert arm_sources(cfg, "aug-eyeglasses")[0][0].endswith("shards/aug-eyeglasses")
    with pytest.raises(ValueError, match="smiling"):
        arm_sources(cfg, "aug-smiling")  # not an attribute of this run


def test_identity_overlap_is_an_error(tiny_run, tmp_path):
    cfg, _ = tiny_run
    check_identities(cfg, "baseline")  # passes on the real split
    from pipeline.shards import ShardStore
    import shutil

    bad = load_config("tiny", {"output_dir": str(tmp_path / "bad")})
    shutil.copytree(cfg.output_dir / "shards", tmp_path / "bad" / "shards")
    store = ShardStore(str(tmp_path / "bad" / "shards" / "originals"))
    rows = store.read_table().to_pylist()
    leak = next(r for r in rows if r["split"] == "test")
    store.write_shard("part-99999", [{**leak, "sample_id": "leak/original", "split": "train"}])
    with pytest.raises(ValueError, match="overlap|both"):
        check_identities(bad, "baseline")


def test_report_numbers_match_report_json(tiny_run):
    cfg, results = tiny_run
    report = write_report(cfg.output_dir)
    html = (cfg.output_dir / "report.html").read_text()
    data = json.loads((cfg.output_dir / "report.json").read_text())
    assert data["results"] == results
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # opens offline
    assert html.count("data:image/png;base64,") >= 2  # both ROC figures embedded
    import html as htmllib

    for row in report["table"]:
        assert row["value"] in html  # every number in the table is the JSON's
        if row["difference"]:
            # the difference with its verdict, in a cell styled by that verdict
            cls = {"gain": "gain", "loss": "loss"}.get(row["verdict"], "")
            assert f"<td class='{cls}'>{htmllib.escape(row['difference'])}</td>" in html
            assert row["difference"].endswith(row["verdict"])
    assert "Multiple comparisons:" in html


def test_multiplicity_counts_every_paired_difference():
    from recognition.report import multiplicity

    def d(verdict):
        return {"verdict": verdict}

    results = {"confidence": 0.95, "differences": {
        "aug-a": {"celeba": {"auc": d("gain"), "eer": d("no measurable difference")}, "lfw": {"auc": d("loss"), "eer": d("no measurable difference")}},
        "aug-b": {"celeba": {"auc": d("no measurable difference"), "eer": d("no measurable difference")},
                  "lfw": {"auc": d("no measurable difference"), "eer": d("no measurable difference")}}}}
    m = multiplicity(results)
    assert m["comparisons"] == 8 and m["expected_by_chance"] == pytest.approx(0.4)
    assert m["called"] == ["aug-a celeba auc (gain)", "aug-a lfw auc (loss)"]


def test_editors_compare_side_by_side_with_identity_preservation(tiny_run):
    from PIL import Image

    from editing.compare import compare_editors
    from recognition.identity import baseline_embedding

    cfg, _ = tiny_run
    out = compare_editors(cfg, ["identity", "sagan", "stargan"], ["eyeglasses"], embed=baseline_embedding(cfg),
                          progress=QUIET)["eyeglasses"]
    rows = {r["editor"]: r for r in out["results"]}
    assert list(rows) == ["identity", "sagan", "stargan"]
    # the control changes nothing, so the judge's verdict is its verdict before the edit
    ident = rows["identity"]
    assert ident["preservation"]["mean_abs_change_outside_region"] == 0
    assert ident["added"]["success_rate"] == ident["added"]["judge_says_target_before_edit"]
    assert ident["identity"]["original_vs_edited"] == pytest.approx(1.0, abs=1e-3)  # the baseline verifier's embedding
    assert rows["sagan"]["train_seconds"] > 0 and rows["identity"]["train_seconds"] == 0
    assert "mask" in rows["sagan"] and "mask" not in rows["stargan"]  # stargan has no mask to score
    assert all(r["edit_images_per_s"] > 0 for r in rows.values())
    directory = cfg.output_dir / "compare" / "eyeglasses"
    grid = Image.open(directory / "grid.png")
    assert grid.width == 32 * len(out["grid_columns"]) == 32 * (1 + 2 * 3)
    md = (directory / "compare.md").read_text()
    assert all(f"| {name} |" in md for name in rows)
    assert json.loads((directory / "compare.json").read_text())["editors"] == ["identity", "sagan", "stargan"]

    # the run report carries the comparison: its table rows and the grid, from compare.json
    report = write_report(cfg.output_dir)
    assert report["comparisons"]["eyeglasses"]["editors"] == ["identity", "sagan", "stargan"]
    html = (cfg.output_dir / "report.html").read_text()
    assert "Editors compared" in html and "eyeglasses: editors side by side" in html
    for r in out["results"]:
        assert f"<td>{r['edit_images_per_s']:.0f}</td>" in html
    assert "compare/eyeglasses/grid.png" in (cfg.output_dir / "report.md").read_text()


def test_editors_probe_cli_writes_its_files_beside_the_editor(tiny_run):
    from click.testing import CliRunner

    from flows.cli import main
    from pipeline.layout import RunLayout

    cfg, _ = tiny_run
    result = CliRunner().invoke(main, ["editors", "probe", "--profile", "tiny", "--set", f"output_dir={cfg.output_dir}",
                                       "--attribute", "eyeglasses"])
    assert result.exit_code == 0, result.output
    assert "| true region |" in result.output and "discriminator balanced accuracy" in result.output
    directory = RunLayout(cfg).editor_dir("eyeglasses")
    probe = json.loads((directory / "probe.json").read_text())
    assert probe["attribute"] == "eyeglasses" and set(probe["variants"]) >= {"own mask", "true region", "no edit"}
    assert (directory / "probe.png").exists() and (directory / "probe.md").read_text().startswith("| blend |")
