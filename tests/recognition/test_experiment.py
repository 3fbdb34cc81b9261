"""The verification experiment and report on the tiny profile: real stages end to end, fast."""

import json

import pytest

from pipeline.config import load_config
from recognition.experiment import arm_sources, check_identities
from recognition.report import write_report
from recognition.results import interval_text

QUIET = lambda *_: None  # noqa: E731


ARMS = ["baseline", "aug-eyeglasses", "aug-eyeglasses@identity", "aug-eyeglasses@counterfactual"]  # conftest's tiny_run


def test_results_cover_every_arm_protocol_metric_and_comparison(tiny_run):
    cfg, results = tiny_run
    assert set(results["arms"]) == set(ARMS)
    assert results["budget"] == "equal_steps" and results["steps"] == cfg.verifier.steps and results["seeds"] == [0, 1]
    protocols = results["protocols"]
    assert {"celeba", "lfw"} <= set(protocols)
    # the cross-attribute protocol: differ / agree sets for every edited attribute, on both test sets
    for attribute in ("eyeglasses", "mouth_slightly_open", "smiling", "no_beard"):
        for split in ("differ", "agree"):
            assert f"celeba-cross/{attribute}/{split}" in protocols
            assert f"lfw-cross/{attribute}/{split}" in protocols
    scored = [name for name, info in protocols.items() if "note" not in info]
    assert any(name.startswith("celeba-cross/") for name in scored) and any(name.startswith("lfw-cross/") for name in scored)
    for name, info in protocols.items():
        assert set(info["resolvable"]) == {"auc", "eer", "tar@far=0.001", "tar@far=0.01"}
        assert ("note" in info) == (name not in results["arms"]["baseline"]["protocols"])  # too few pairs: said, not scored
    for arm, r in results["arms"].items():
        assert all(t["steps"] == cfg.verifier.steps for t in r["training"])  # equal compute across arms
        for name, entry in r["protocols"].items():
            for metric, m in entry["metrics"].items():
                assert m["ci_low"] <= m["mean"] <= m["ci_high"] and len(m["seed_values"]) == 2
            assert len(entry["roc"]["tar_mean"]) == len(results["far_grid"])
        assert 0 <= r["protocols"]["lfw"]["tenfold"]["accuracy_mean"] <= 1


def test_edits_are_compared_with_their_no_edit_control_with_holm_and_mdd(tiny_run):
    _, results = tiny_run
    # the run's editor (sagan) and the positive control each get their no-edit control; the control itself does not
    assert set(results["control_differences"]) == {"aug-eyeglasses", "aug-eyeglasses@counterfactual"}
    assert set(results["differences"]) == set(ARMS) - {"baseline"}
    d = results["control_differences"]["aug-eyeglasses"]["celeba"]["auc"]
    assert d["reference"] == "aug-eyeglasses@identity" and d["kind"] == "vs no-edit control"
    assert d["mdd"] > 0 and d["verdict"] in ("gain", "loss", "no measurable difference")
    assert (d["verdict"] == "no measurable difference") == (d["ci_low"] <= 0 <= d["ci_high"])
    assert d["adjusted_p"] >= d["p_value"] and d["adjusted_verdict"] in ("gain", "loss", "no measurable difference")
    family = [c for by_set in results["control_differences"].values() for by_metric in by_set.values() for c in by_metric.values()
              if c["p_value"] is not None]
    assert results["multiple_comparisons"]["families"]["edits vs no-edit control"] == len(family)
    smallest = min(family, key=lambda c: c["p_value"])
    assert smallest["adjusted_p"] == pytest.approx(min(1.0, len(family) * smallest["p_value"]))  # Holm's first step
    for c in family:
        if c["adjusted_verdict"] != "no measurable difference":
            assert c["adjusted_p"] < 0.05
    f = results["positive_control_fraction"]["aug-eyeglasses"]["celeba"]["auc"]
    assert (f["fraction"] is None) == bool(f["note"])
    for arm, by_set in results["positive_control_fraction"].items():  # defined only where the headline calls a gain
        for name, by_metric in by_set.items():
            for metric, f in by_metric.items():
                positive = results["control_differences"]["aug-eyeglasses@counterfactual"][name][metric]
                assert (f["fraction"] is not None) == (positive["adjusted_verdict"] == "gain")
    # a FAR level the impostors cannot resolve is never called
    for by_set in results["control_differences"].values():
        for name, by_metric in by_set.items():
            for metric, c in by_metric.items():
                if not results["protocols"][name]["resolvable"][metric]:
                    assert c["verdict"] == "not resolvable" and c["p_value"] is None


def test_arms_use_the_right_data(tiny_run):
    cfg, _ = tiny_run
    assert arm_sources(cfg, "baseline")[0][0].endswith("shards/originals")
    assert arm_sources(cfg, "aug-eyeglasses")[0][0].endswith("shards/aug-eyeglasses")
    assert arm_sources(cfg, "aug-eyeglasses@counterfactual")[0][0].endswith("shards/aug-eyeglasses@counterfactual")
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


def test_report_answers_first_and_every_number_comes_from_results(tiny_run):
    import html as htmllib

    cfg, results = tiny_run
    report = write_report(cfg.output_dir)
    page = (cfg.output_dir / "report.html").read_text()
    md = (cfg.output_dir / "report.md").read_text()
    data = json.loads((cfg.output_dir / "report.json").read_text())
    assert data["results"] == results
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # opens offline
    # the headline: each edited arm vs its no-edit control on the standard and crossing pairs, from results.json
    heads = report["headline"]
    assert {h["arm"] for h in heads} == {"aug-eyeglasses", "aug-eyeglasses@counterfactual"}
    for h in heads:
        d = results["control_differences"][h["arm"]][h["pair_set"]]["auc"]
        assert h["difference"] == interval_text(d["diff_mean"], d["ci_low"], d["ci_high"], sign=True)
        assert h["adjusted_verdict"] == d["adjusted_verdict"] and h["mdd"] == d["mdd"]
        assert htmllib.escape(h["difference"]) in page and h["difference"] in md
    assert {"celeba", "lfw"} <= {h["pair_set"] for h in heads}
    assert all(line in md for line in report["summary"])
    assert "would have been seen" in " ".join(report["summary"])  # every verdict comes with its detectable difference
    # one compact table per pair set, its cells the estimates
    table = next(t for t in report["tables"] if t["pair_set"] == "celeba")
    assert [row["arm"] for row in table["rows"]] == ARMS and "auc" in table["columns"]
    m = results["arms"]["baseline"]["protocols"]["celeba"]["metrics"]["auc"]
    assert table["rows"][0]["auc"] == f"{m['mean']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
    assert htmllib.escape(table["rows"][0]["auc"]) in page
    # every comparison row, with its verdict in a cell styled by that verdict
    for row in report["comparisons_table"]:
        cls = {"gain": "gain", "loss": "loss"}.get(row["verdict"])
        assert (f"<td class='{cls}'>" if cls else "<td>") + f"{htmllib.escape(row['verdict'])}</td>" in page
    assert page.count("data:image/png;base64,") >= 3  # ROC figures and the forest plot, embedded
    assert (cfg.output_dir / "forest.png").exists() and (cfg.output_dir / "roc_celeba.png").exists()


def test_one_seed_reports_too_few_seeds_instead_of_verdicts():
    from recognition.report import summary_lines

    results = {"seeds": [0], "confidence": 0.95, "power": 0.8, "method": "m", "budget": "equal_steps", "steps": 5,
               "arms": {}, "control_differences": {}, "differences": {}, "multiple_comparisons": {}}
    lines = summary_lines({"results": results, "config": {}})
    assert any("Only 1 seed" in line and "too few seeds for a verdict" in line for line in lines)
    assert any("no-edit control" in line for line in lines)


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
    assert rows["sagan"]["counterfactual_error"]["ratio_inside"] > 0  # measured against the true edit
    assert rows["identity"]["counterfactual_error"]["ratio_inside"] == pytest.approx(1.0)  # doing nothing: all of it missing
    present = [d for d in ("added", "removed") if rows["identity"][d]["images"]]  # the tiny test split may lack one
    assert "added" in present
    for direction in present:  # the same figure per direction (adding has many right answers, removing one)
        assert rows["identity"]["counterfactual_error"][direction]["ratio_inside"] == pytest.approx(1.0)
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


def test_plan_cli_sizes_a_design_from_the_baseline_or_from_a_finished_comparison(tiny_run):
    from click.testing import CliRunner

    from flows.cli import main

    cfg, results = tiny_run
    base = ["plan", "--profile", "tiny", "--set", f"output_dir={cfg.output_dir}", "--set", "verifier.seeds=[0, 1]",
            "--difference", "0.05", "--pair-set", "celeba"]
    from_baseline = CliRunner().invoke(main, base)
    assert from_baseline.exit_code == 0, from_baseline.output
    assert "noise from: baseline seeds paired against each other" in from_baseline.output
    pilot = CliRunner().invoke(main, [*base, "--compare", "aug-eyeglasses@counterfactual", "aug-eyeglasses@identity",
                                      "--seeds", "6", "--identities", "40"])
    assert pilot.exit_code == 0, pilot.output
    assert "same-seed differences of a finished comparison (aug-eyeglasses@counterfactual vs aug-eyeglasses@identity)" in pilot.output
    row = next(line for line in pilot.output.splitlines() if line.startswith("| celeba |"))
    assert "(6 x 40)" in row
    # the MDD 'now' of the comparison is the one its evaluation reported
    reported = results["control_differences"]["aug-eyeglasses@counterfactual"]["celeba"]["auc"]["mdd"]
    assert float(row.split("|")[2].strip().lstrip("±")) == pytest.approx(reported, rel=0.1)
    unknown = CliRunner().invoke(main, [*base[:-1], "no-such-set"])
    assert unknown.exit_code == 2 and "no pair set matched" in unknown.output


def test_a_run_scored_on_some_protocols_without_its_baseline_still_reports(tiny_run, tmp_path):
    """The 1,000-identity evidence run is scored on the crossing pairs and LFW only, its control and edited arms
    first: the verdicts against the no-edit control and the report stand without the baseline or `celeba`."""
    import shutil

    from recognition.evaluation import evaluate_run

    cfg, _ = tiny_run
    shutil.copytree(cfg.output_dir, tmp_path / "run")
    sub = load_config("tiny", {"output_dir": str(tmp_path / "run"), "workers": 2,
                               "verifier": {"threads": 1, "arms": ARMS[1:], "seeds": [0, 1]},
                               "evaluation": {"protocols": ["celeba-cross", "lfw"], "precision": "bf16"}})
    results = evaluate_run(sub, progress=QUIET)
    assert results["differences"] == {} and set(results["control_differences"]) == {"aug-eyeglasses", "aug-eyeglasses@counterfactual"}
    assert {p["protocol"] for p in results["protocols"].values()} == {"celeba-cross", "lfw"}
    report = write_report(sub.output_dir)
    assert report["headline"] and {h["pair_set"] for h in report["headline"]} <= set(results["protocols"]) - {"celeba"}
    assert (sub.output_dir / "report.html").exists()
