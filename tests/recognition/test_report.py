"""The report against its results table: every number the summary, the headline and the tables show is a row of
results.parquet, in report.md, report.json and report.html alike; the CSV holds the same rows; runs merge."""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil

import pandas as pd
import pytest

from recognition.report import write_report
from recognition.results import CONTROL_FAMILY, interval_text, merge_results, read_results, records

NUMBER = re.compile(r"[-+±]?\d+\.\d{4}")


@pytest.fixture
def reported(tiny_run):
    cfg, _ = tiny_run
    report = write_report(cfg.output_dir)
    return cfg.output_dir, report, read_results(cfg.output_dir / "results.parquet")


def _row(t: pd.DataFrame, **where) -> dict:
    mask = pd.Series(True, index=t.index)
    for column, value in where.items():
        mask &= t[column].isna() if value is None else (t[column] == value)
    found = records(t[mask])
    assert len(found) == 1, f"{where}: {len(found)} rows"
    return found[0]


def test_summary_and_headline_numbers_are_rows_of_the_table(reported):
    run_dir, report, t = reported
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    diffs = t[t["kind"] == "difference"]
    shown = set()
    for r in records(diffs):
        shown |= {interval_text(r["value"], r["ci_low"], r["ci_high"], sign=True), f"±{r['mdd']:.4f}"}
    for h in report["headline"]:
        d = _row(t, kind="difference", family=CONTROL_FAMILY, arm=h["arm"], pair_set=h["pair_set"], metric="auc")
        assert h["difference"] == interval_text(d["value"], d["ci_low"], d["ci_high"], sign=True)
        assert (h["mdd"], h["verdict"], h["adjusted_verdict"], h["control"]) == (d["mdd"], d["verdict"], d["adjusted_verdict"], d["reference"])
        b = _row(t, kind="difference", family="vs baseline", arm=h["arm"], pair_set=h["pair_set"], metric="auc")
        assert h["vs_baseline"] == interval_text(b["value"], b["ci_low"], b["ci_high"], sign=True)
        for text in (h["difference"], f"±{h['mdd']:.4f}", h["vs_baseline"]):
            assert text in md and htmllib.escape(text) in page
    # every number in the summary sentences is a formatted difference, interval end or MDD of a row
    summary_numbers = set(NUMBER.findall(" ".join(report["summary"])))
    table_numbers = set(NUMBER.findall(" ".join(shown)))
    assert summary_numbers and summary_numbers <= table_numbers
    assert all(line in md for line in report["summary"])
    assert all(htmllib.escape(item) in page for b in report["summary_blocks"] for item in b.get("items", []))
    assert json.loads((run_dir / "report.json").read_text())["headline"] == report["headline"]


def test_protocol_tables_and_comparisons_are_rows_of_the_table(reported):
    run_dir, report, t = reported
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    scored = set(t.loc[t["kind"] == "estimate", "pair_set"])
    assert {tb["pair_set"] for tb in report["tables"] if tb["rows"]} == scored
    cells = 0
    for tb in report["tables"]:
        for row in tb["rows"]:
            for column in tb["columns"][1:]:
                if column not in row:
                    continue
                metric = "accuracy@10-fold" if column == "10-fold accuracy" else column.removesuffix(" (not resolvable)")
                e = _row(t, kind="estimate", arm=row["arm"], pair_set=tb["pair_set"], metric=metric)
                assert row[column] == interval_text(e["value"], e["ci_low"], e["ci_high"])
                assert column.endswith("(not resolvable)") == (e["resolvable"] is False)
                cells += 1
            line = "| " + " | ".join(row.get(c, "") for c in tb["columns"]) + " |"
            assert line in md
            assert all(htmllib.escape(row[c]) in page for c in row)
    assert cells == len(t[t["kind"] == "estimate"])  # every estimate shown, once
    assert len(report["comparisons_table"]) == len(t[t["kind"] == "difference"])
    for c in report["comparisons_table"]:
        d = _row(t, kind="difference", family=c["family"], arm=c["arm"], pair_set=c["pair_set"], metric=c["metric"])
        assert c["difference"] == interval_text(d["value"], d["ci_low"], d["ci_high"], sign=True)
        assert c["adjusted_p"] == (None if d["adjusted_p"] is None else round(d["adjusted_p"], 4))
    info = report["results"]["protocols"]["celeba"]
    p = _row(t, kind="pair_set", pair_set="celeba")
    assert (p["genuine"], p["impostors"], p["identities"]) == (info["genuine"], info["impostors"], info["identities"])


def test_results_csv_matches_parquet_and_the_json(reported):
    run_dir, report, t = reported
    pd.testing.assert_frame_equal(read_results(run_dir / "results.csv"), t)
    raw = pd.read_parquet(run_dir / "results.parquet")  # plain pandas, no faceaug code
    assert len(raw) == report["results_table"]["rows"] == len(t)
    results = report["results"]
    m = results["arms"]["baseline"]["protocols"]["celeba"]["metrics"]["auc"]
    e = _row(t, kind="estimate", arm="baseline", pair_set="celeba", metric="auc")
    assert (e["value"], e["ci_low"], e["ci_high"]) == (m["mean"], m["ci_low"], m["ci_high"])
    seeds = t[(t["kind"] == "seed") & (t["arm"] == "baseline") & (t["pair_set"] == "celeba") & (t["metric"] == "auc")]
    assert seeds["value"].tolist() == m["seed_values"] and seeds["seed"].tolist() == results["seeds"]


def test_merge_two_runs(reported, tmp_path):
    run_dir, _, t = reported
    other = tmp_path / "other"
    other.mkdir()
    for name in ("results.json", "config.json"):
        shutil.copy(run_dir / name, other / name)
    results = json.loads((other / "results.json").read_text())
    results["arms"]["baseline"]["protocols"]["celeba"]["metrics"]["auc"]["mean"] = 0.123
    (other / "results.json").write_text(json.dumps(results))
    merged = merge_results([run_dir, other])
    assert merged["run"].value_counts().to_dict() == {str(run_dir): len(t), str(other): len(t)}
    pd.testing.assert_frame_equal(merged[merged["run"] == str(run_dir)].drop(columns="run").reset_index(drop=True), t)
    base = merged[(merged["kind"] == "estimate") & (merged["arm"] == "baseline") & (merged["pair_set"] == "celeba")
                  & (merged["metric"] == "auc")]
    assert base.set_index("run")["value"].loc[str(other)] == 0.123


def test_results_command_prints_and_merges(reported, tmp_path):
    from click.testing import CliRunner

    from flows.cli import main

    run_dir, _, t = reported
    out = tmp_path / "merged.csv"
    result = CliRunner().invoke(main, ["results", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"== {run_dir}:" in result.output and "baseline" in result.output
    merged = pd.read_csv(out)
    assert len(merged) == len(t) and set(merged["run"]) == {str(run_dir)}
    bad = CliRunner().invoke(main, ["results", str(tmp_path)])  # a directory without results: a clear error
    assert bad.exit_code != 0 and "results" in bad.output


def _stored_grid(faces: int, cell: int, region: bool):
    """An evaluation.png as editing/evaluate.py stores it: per face original | edited | mask | |residual| [| true region]."""
    import numpy as np
    from PIL import Image

    rows = []
    for i in range(faces):
        face = np.full((cell, cell, 3), (140 + 20 * i, 90, 60), np.uint8)
        box = np.zeros((cell, cell), np.uint8)
        box[cell // 4: cell // 2, cell // 4: 3 * cell // 4] = 255
        grey = lambda a: np.repeat(a[..., None], 3, axis=2)  # noqa: E731
        cells = [face, face, grey(box // 2), grey(box // 4)] + ([grey(box)] if region else [])
        rows.append(np.concatenate(cells, axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


@pytest.mark.parametrize("region", [True, False])
def test_editing_grid_is_redrawn_large_with_a_colour_mask_and_the_true_region(tmp_path, region):
    import io

    import numpy as np
    from PIL import Image

    from recognition.report_html import REGION_COLOUR, editor_grid_figure

    path = tmp_path / "evaluation.png"
    _stored_grid(faces=3, cell=32, region=region).save(path)
    image = np.asarray(Image.open(io.BytesIO(editor_grid_figure(path, 32))).convert("RGB")).astype(int)
    assert image.shape[1] >= 3 * 128 and image.shape[0] >= 4 * 128  # 3 faces as columns, 4 rows, >= 128 px cells
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    outline = tuple(int(REGION_COLOUR[i: i + 2], 16) for i in (1, 3, 5))
    assert any(sum(abs(a - b) for a, b in zip(c, outline)) < 40 for c in colours) == region  # outlined only with a region
    assert any(c[0] > 150 and c[2] < 120 and c[1] < 120 for c in colours)  # magma's orange-red: the mask in colour
    assert editor_grid_figure(path, 30) is None  # a grid that does not split into cells is not redrawn


def test_report_is_self_contained_with_large_editing_grids(reported, tmp_path):
    import base64
    import io

    from PIL import Image

    run_dir, _, _ = reported
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("shards", "verifiers", "*.pt", "samples"))
    _stored_grid(faces=4, cell=32, region=True).save(copy / "editors" / "sagan-eyeglasses" / "evaluation.png")
    write_report(copy)
    page = (copy / "report.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page and "src=\"file:" not in page
    grids = dict(re.findall(r'<img class="grid" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page))
    image = Image.open(io.BytesIO(base64.b64decode(grids["sagan-eyeglasses: faces, edits, masks"])))
    assert image.width >= 4 * 128  # each face cell drawn >= 128 px wide
    for title in ("Method", "Timings", "Software versions", "Config"):
        assert f"<details><summary>{title}</summary>" in page
    assert page.index('class="answer"') < page.index("<h2>Protocols</h2>") < page.index("Editors: quality")
    assert page.index("Editors: quality") < page.index("<details><summary>Config</summary>")


def test_the_chosen_checkpoint_and_its_validation_curve_are_shown(reported, tmp_path):
    run_dir, _, _ = reported
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("shards", "verifiers", "*.pt", "samples"))
    scores = lambda added, removed, outside: {"attributes": {"eyeglasses": {"added": added, "removed": removed}},  # noqa: E731
                                              "weaker_direction": min(added, removed), "outside_change": outside,
                                              "counterfactual_ratio": 1.0}
    curve = [{"step": 2, **scores(0.9, 0.25, 0.003)}, {"step": 4, **scores(0.8, 0.625, 0.004)}]
    (copy / "editors" / "sagan-eyeglasses" / "selection.json").write_text(json.dumps(
        {"criterion": "the weaker direction", "best_step": 4, "best": curve[1], "stopped_early_at": None, "curve": curve}))
    write_report(copy)
    md = (copy / "report.md").read_text()
    line = next(x for x in md.splitlines() if "checkpoint chosen on the validation identities" in x)
    assert "iteration 4 of" in line and "(the weaker direction)" in line and "2: 25% / 0.0030; 4: 62% / 0.0040" in line
    page = (copy / "report.html").read_text()
    assert htmllib.escape("iteration 4 of") in page and 'alt="sagan-eyeglasses: validation curve"' in page
    # an editor without selection (the controls) shows no such line
    assert not any("checkpoint chosen" in x for x in md.splitlines() if x.startswith("- identity-"))


def test_the_summary_says_whether_the_run_could_have_seen_a_benefit(reported):
    run_dir, _, t = reported
    md = (run_dir / "report.md").read_text()
    line = next(x for x in md.splitlines() if "Sensitivity:" in x)
    gains = t[(t["kind"] == "difference") & (t["family"] == CONTROL_FAMILY) & (t["arm"] == "aug-eyeglasses@counterfactual")
              & (t["metric"] == "auc") & t["pair_set"].str.endswith("/differ") & (t["adjusted_verdict"] == "gain")]
    assert f"for {1 if len(gains) else 0} of 1 attribute" in line
    assert ("could not have shown a benefit" in line) == gains.empty
    # beside it, Holm over the positive controls' own CelebA-format crossing-pair tests alone (here one test: unadjusted)
    own = t[(t["kind"] == "difference") & (t["family"] == CONTROL_FAMILY) & (t["arm"] == "aug-eyeglasses@counterfactual")
            & (t["metric"] == "auc") & (t["pair_set"] == "celeba-cross/eyeglasses/differ") & t["p_value"].notna()]
    if len(own):
        called = own.iloc[0]["p_value"] < 0.05 and own.iloc[0]["value"] > 0
        assert f"(the sensitivity family): {int(called)} of 1" in line
    else:
        assert "sensitivity family" not in line


def test_cross_gap_script_reads_agree_minus_differ_for_every_arm_the_run_has(tiny_run):
    """scripts/cross_gap.py (the gap tables of docs/verification.md): each cell is the arm's mean AUC on the pairs that
    agree in the attribute minus the pairs that differ in it, for the columns whose arms the run has."""
    import importlib.util
    from pathlib import Path

    _, results = tiny_run
    spec = importlib.util.spec_from_file_location("cross_gap", Path(__file__).parents[2] / "scripts" / "cross_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    header, rows = module.gap_rows(results)
    assert header == ["attribute", "baseline", "no-edit control", "true edit", "edited (aug-<a>)"]
    by_attribute = {row[0]: row for row in rows}
    assert "eyeglasses" in by_attribute

    def auc(arm, which):
        entry = results["arms"][arm]["protocols"].get(f"celeba-cross/eyeglasses/{which}")
        return entry and entry["metrics"]["auc"]["mean"]

    read = 0
    for column, arm in zip(header[1:], ["baseline", "aug-eyeglasses@identity", "aug-eyeglasses@counterfactual", "aug-eyeglasses"]):
        cell = by_attribute["eyeglasses"][header.index(column)]
        agree, differ = auc(arm, "agree"), auc(arm, "differ")
        if agree is None or differ is None:  # too few pairs in the tiny run to read that split
            assert cell == "–", (column, cell)
            continue
        assert cell == f"{agree - differ:.4f} ({differ:.4f} vs {agree:.4f})", (column, cell)
        read += 1
    # where the tiny run has too few crossing pairs to read, the same arithmetic on a run that has them
    entry = lambda v: {"metrics": {"auc": {"mean": v}}}
    made = {"protocols": {"celeba-cross/smiling/differ": {}, "celeba-cross/smiling/agree": {}},
            "arms": {"aug-smiling@identity": {"protocols": {"celeba-cross/smiling/differ": entry(0.90), "celeba-cross/smiling/agree": entry(0.95)}},
                     "aug-smiling": {"protocols": {"celeba-cross/smiling/differ": entry(0.93)}}}}
    assert module.gap_rows(made) == (["attribute", "no-edit control", "edited (aug-<a>)"],
                                     [["smiling", "0.0500 (0.9000 vs 0.9500)", "–"]])
    assert read or all(row[1:] == ["–"] * 4 for row in rows)


def test_primary_tests_script_adjusts_over_the_four_positive_control_tests_only(tiny_run):
    """scripts/primary_tests.py (the pre-registered reading of docs/verification.md): the positive control against the
    no-edit control on each attribute's crossing pairs, Holm over those tests alone; a missing arm is not in the family."""
    import importlib.util
    from pathlib import Path

    import pandas as pd

    from recognition.results import results_table

    spec = importlib.util.spec_from_file_location("primary_tests", Path(__file__).parents[2] / "scripts" / "primary_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def row(a, value, p, arm=None):
        return {"kind": "difference", "metric": "auc", "arm": arm or f"aug-{a}@counterfactual", "reference": f"aug-{a}@identity",
                "editor": "sagan" if arm else "counterfactual", "attribute": a,
                "pair_set": f"celeba-cross/{a}/differ", "value": value, "ci_low": value - 0.01, "ci_high": value + 0.01,
                "p_value": p, "adjusted_p": 1.0, "family": "vs no-edit control", "mdd": 0.01, "higher_is_better": True}
    made = pd.DataFrame([row("eyeglasses", 0.02, 0.01), row("no_beard", 0.03, 0.001), row("smiling", -0.02, 0.02),
                         row("smiling", 0.5, 1e-9, arm="aug-smiling"),  # the editor's arm, not a primary test
                         {"kind": "pair_set", "pair_set": "celeba-cross/mouth_slightly_open/differ"}])
    rows, gains = module.primary_rows(made)
    by = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == ["eyeglasses", "mouth_slightly_open", "no_beard", "smiling"]
    # Holm over three tests: 0.001 * 3, 0.01 * 2, 0.02 * 1
    assert [by[a][4] for a in ("no_beard", "eyeglasses", "smiling")] == ["0.003", "0.02", "0.02"]
    assert [by[a][6] for a in ("no_beard", "eyeglasses", "smiling")] == ["gain", "gain", "loss"]
    assert by["mouth_slightly_open"][1].startswith("missing") and gains == 2
    assert module.primary_rows(made, "eer") == ([[a, "missing (the run lacks one of the two arms, or the pair set is unreadable)"]
                                                 + ["–"] * 5 for a in by], 0)  # no EER rows: another metric, its own family
    # --editor sagan: the editor's arms against the same controls, Holm over their own tests
    rows, gains = module.primary_rows(made, editor="sagan")
    assert gains == 1 and [r[0] for r in rows if not r[1].startswith("missing")] == ["smiling"]
    assert next(r for r in rows if r[0] == "smiling")[1:5] == ["+0.5000 [+0.4900, +0.5100]", "±0.0100", "1e-09", "1e-09"]

    # on a real run's table: the tiny run has the eyeglasses positive and no-edit controls
    cfg, results = tiny_run
    table = results_table(results, cfg.model_dump())
    rows, _ = module.primary_rows(table)
    glasses = next(r for r in rows if r[0] == "eyeglasses")
    expected = table[(table["kind"] == "difference") & (table["metric"] == "auc") & (table["arm"] == "aug-eyeglasses@counterfactual")
                     & (table["reference"] == "aug-eyeglasses@identity") & (table["pair_set"] == "celeba-cross/eyeglasses/differ")]
    if len(expected) and expected.iloc[0]["p_value"] == expected.iloc[0]["p_value"]:
        assert glasses[1] == f"{expected.iloc[0]['value']:+.4f} [{expected.iloc[0]['ci_low']:+.4f}, {expected.iloc[0]['ci_high']:+.4f}]"
    else:
        assert glasses[1].startswith("missing")


def test_share_script_reads_the_same_auc_and_bootstrap_as_the_evaluation(tiny_run):
    """scripts/share_of_true_edit.py recomputes AUC per seed and per bootstrap replicate from the cached embeddings: on
    every pair set the tiny run could read, its estimate (mean and interval) is the evaluation's, to the last digit."""
    import importlib.util
    from pathlib import Path

    from recognition.intervals import estimate_from

    spec = importlib.util.spec_from_file_location("share", Path(__file__).parents[2] / "scripts" / "share_of_true_edit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg, results = tiny_run
    read = [n for n in results["arms"]["aug-eyeglasses"]["protocols"] if n.startswith("celeba")]
    assert read
    for name in read:
        full, reps = module.auc_values(cfg, "aug-eyeglasses", name)
        assert full.shape == (len(cfg.verifier.seeds),) and reps.shape == (cfg.evaluation.bootstrap, len(cfg.verifier.seeds))
        mine = estimate_from("auc", full, reps, cfg.evaluation.confidence).as_dict()
        theirs = results["arms"]["aug-eyeglasses"]["protocols"][name]["metrics"]["auc"]
        assert {k: mine[k] for k in ("mean", "ci_low", "ci_high")} == {k: theirs[k] for k in ("mean", "ci_low", "ci_high")}, name
