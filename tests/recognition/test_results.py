"""The tidy results table: rows with known answers from a hand-made results.json, files that round-trip, merging runs."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recognition.results import (COLUMNS, CONTROL_FAMILY, SCHEMA, interval_text, merge_results, print_results, read_results,
                                 results_frame, results_table, write_results)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results-schema.md"


def _estimate(mean, lo, hi, values):
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "se": 0.01, "se_test": 0.008, "seed_sd": 0.02, "seed_values": values}


def _difference(arm, reference, d, lo, hi, p, verdict, adjusted_p, adjusted):
    return {"diff_mean": d, "ci_low": lo, "ci_high": hi, "se": 0.01, "seed_sd": 0.01, "p_value": p, "verdict": verdict, "mdd": 0.03,
            "seeds": 2, "confidence": 0.95, "resolvable": p is not None, "arm": arm, "reference": reference,
            "adjusted_p": adjusted_p, "adjusted_verdict": adjusted}


def hand_results() -> dict:
    """Three arms x two seeds on one pair set; AUC and an unresolvable TAR@FAR; every kind of row once."""
    arms = {}
    for arm, auc in (("baseline", 0.90), ("aug-eyeglasses", 0.95), ("aug-eyeglasses@identity", 0.91)):
        arms[arm] = {"training": [{"steps": 6, "wall_s_this_session": 1.5, "images_per_s": 20.0}] * 2,
                     "protocols": {"lfw": {"metrics": {"auc": _estimate(auc, auc - 0.02, auc + 0.02, [auc - 0.01, auc + 0.01]),
                                                       "tar@far=0.001": _estimate(0.5, 0.1, 0.9, [0.4, 0.6])},
                                           "roc": {"tar_mean": [0.1, 1.0], "tar_low": [0.0, 1.0], "tar_high": [0.2, 1.0]},
                                           "tenfold": {"per_seed": [{"accuracy_mean": 0.8}, {"accuracy_mean": 0.9}],
                                                       "accuracy_mean": 0.85}}}}
    unresolvable = _difference("aug-eyeglasses", "x", 0.0, -0.1, 0.1, None, "not resolvable", None, "not resolvable")
    return {
        "budget": "equal_steps", "steps": 6, "epochs": None, "seeds": [3, 7], "confidence": 0.95, "power": 0.8, "bootstrap": 10,
        "far_grid": [0.001, 1.0], "method": "m", "multiple_comparisons": {"families": {"edits vs no-edit control": 1}},
        "protocols": {"lfw": {"protocol": "lfw", "test_set": "lfw", "description": "LFW pairs", "genuine": 30, "impostors": 300,
                              "identities": 40, "folds": 10, "resolvable": {"auc": True, "tar@far=0.001": False}},
                      "lfw-cross/eyeglasses/differ": {"protocol": "lfw-cross", "test_set": "lfw", "description": "d", "genuine": 0,
                                                      "impostors": 1, "identities": 1, "folds": None, "note": "too few pairs"}},
        "arms": arms,
        "control_differences": {"aug-eyeglasses": {"lfw": {
            "auc": _difference("aug-eyeglasses", "aug-eyeglasses@identity", 0.04, 0.01, 0.07, 0.004, "gain", 0.008, "gain"),
            "tar@far=0.001": {**unresolvable, "reference": "aug-eyeglasses@identity"}}}},
        "differences": {"aug-eyeglasses": {"lfw": {
            "auc": _difference("aug-eyeglasses", "baseline", 0.05, 0.02, 0.08, 0.001, "gain", 0.002, "gain")}}},
        "positive_control_fraction": {"aug-eyeglasses": {"lfw": {"auc": {"fraction": None, "ci_low": None, "ci_high": None,
                                                                        "se": None, "note": "not defined: ..."}}}},
    }


def test_rows_of_a_hand_made_run():
    t = results_table(hand_results(), {"editor": {"name": "sagan"}})
    assert list(t.columns) == COLUMNS
    assert t["kind"].value_counts().to_dict() == {
        "pair_set": 2, "training": 3 * 2 * 3, "seed": 3 * (2 + 2 + 2), "estimate": 3 * 3, "roc": 3 * 2, "difference": 3, "fraction": 1}
    seed = t[(t["kind"] == "seed") & (t["arm"] == "aug-eyeglasses") & (t["metric"] == "auc")]
    assert seed["seed"].tolist() == [3, 7] and seed["value"].tolist() == pytest.approx([0.94, 0.96])
    est = t[(t["kind"] == "estimate") & (t["arm"] == "baseline") & (t["metric"] == "auc")].iloc[0]
    assert (est["value"], est["ci_low"], est["ci_high"], est["seeds"]) == (0.90, pytest.approx(0.88), pytest.approx(0.92), 2)
    assert est["editor"] is pd.NA and est["identities"] == 40 and est["higher_is_better"]
    tar = t[(t["kind"] == "estimate") & (t["metric"] == "tar@far=0.001")].iloc[0]
    assert tar["far"] == 0.001 and not tar["resolvable"]
    tenfold = t[(t["kind"] == "estimate") & (t["metric"] == "accuracy@10-fold") & (t["arm"] == "baseline")].iloc[0]
    assert tenfold["value"] == 0.85 and pd.isna(tenfold["ci_low"])
    d = t[(t["kind"] == "difference") & (t["family"] == CONTROL_FAMILY) & (t["metric"] == "auc")].iloc[0]
    assert (d["arm"], d["editor"], d["attribute"], d["reference"]) == ("aug-eyeglasses", "sagan", "eyeglasses", "aug-eyeglasses@identity")
    assert (d["value"], d["p_value"], d["adjusted_p"], d["verdict"], d["mdd"], d["power"]) == (0.04, 0.004, 0.008, "gain", 0.03, 0.8)
    nr = t[(t["kind"] == "difference") & (t["metric"] == "tar@far=0.001")].iloc[0]
    assert pd.isna(nr["p_value"]) and nr["verdict"] == "not resolvable"
    f = t[t["kind"] == "fraction"].iloc[0]
    assert pd.isna(f["value"]) and f["note"].startswith("not defined") and f["reference"] == "aug-eyeglasses@identity"
    skipped = t[(t["kind"] == "pair_set") & (t["pair_set"] == "lfw-cross/eyeglasses/differ")].iloc[0]
    assert skipped["note"] == "too few pairs" and skipped["genuine"] == 0 and pd.isna(skipped["folds"])
    roc = t[(t["kind"] == "roc") & (t["arm"] == "baseline")]
    assert roc["far"].tolist() == [0.001, 1.0] and roc["value"].tolist() == [0.1, 1.0]
    assert {c: str(t[c].dtype) for c in ("seed", "value", "resolvable")} == {"seed": "Int64", "value": "float64", "resolvable": "boolean"}


def test_an_empty_run_has_the_columns_and_no_rows():
    t = results_table({"seeds": [0]})
    assert t.empty and list(t.columns) == COLUMNS


def test_files_round_trip_and_csv_equals_parquet(tmp_path):
    frame = write_results(tmp_path, hand_results(), {"editor": {"name": "sagan"}})
    from_parquet, from_csv = read_results(tmp_path / "results.parquet"), read_results(tmp_path / "results.csv")
    pd.testing.assert_frame_equal(from_parquet, frame)
    pd.testing.assert_frame_equal(from_csv, from_parquet)  # every float to the last bit, every null, every type
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="parquet or .csv"):
        read_results(tmp_path / "results.json")


def test_schema_is_documented():
    doc = DOCS.read_text()
    for column, (dtype, _) in SCHEMA.items():
        assert re.search(rf"^\| `{re.escape(column)}` \| {re.escape(dtype)} \|", doc, re.M), f"{column} missing from {DOCS.name}"
    assert "| `run` |" in doc
    for kind in ("pair_set", "training", "seed", "estimate", "roc", "difference", "fraction"):
        assert f"`{kind}`" in doc


def test_interval_text():
    assert interval_text(0.93124, 0.9, 0.95) == "0.9312 [0.9000, 0.9500]"
    rng = np.random.default_rng(0)  # the same digits as plain formatting, halfway cases included
    for v in np.concatenate((rng.normal(0, 0.3, 2000), np.round(rng.normal(0, 1, 2000), 5))):
        plain = f"{v:+.4f}"
        assert interval_text(v, None, None, sign=True) == ("+0.0000" if plain == "-0.0000" else plain)
    assert interval_text(-1e-17, -0.5, 0.5, sign=True) == "+0.0000 [-0.5000, +0.5000]"  # no "-0.0000"
    assert interval_text(0.85, None, None) == "0.8500" and interval_text(None, 0, 1) == "n/a"


def _run_copy(tmp_path: Path, name: str, results: dict) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps(results))
    (d / "config.json").write_text(json.dumps({"editor": {"name": "sagan"}}))
    return d


def test_merge_and_print_results(tmp_path):
    a = _run_copy(tmp_path, "a", hand_results())
    other = hand_results()
    other["arms"]["baseline"]["protocols"]["lfw"]["metrics"]["auc"]["mean"] = 0.5
    b = _run_copy(tmp_path, "b", other)
    merged = merge_results([a, b])
    assert list(merged.columns) == ["run", *COLUMNS] and merged["run"].unique().tolist() == [str(a), str(b)]
    base = merged[(merged["kind"] == "estimate") & (merged["arm"] == "baseline") & (merged["metric"] == "auc")]
    assert base.set_index("run")["value"].to_dict() == {str(a): 0.90, str(b): 0.5}
    out = io.StringIO()
    printed = print_results([a, b], out=tmp_path / "merged.csv", file=out)
    text = out.getvalue()
    assert f"== {a}: 3 arms x 2 seeds" in text and f"== {b}:" in text
    assert "0.9000 [0.8800, 0.9200]" in text and "+0.0400 [+0.0100, +0.0700]" in text and "gain" in text
    pd.testing.assert_frame_equal(read_results(tmp_path / "merged.csv"), printed)
    # a merged table (or a run shared as its parquet alone) merges again, keeping its runs
    shutil.copy(tmp_path / "merged.csv", tmp_path / "again.csv")
    write_results(a, hand_results())
    (a / "results.json").unlink()
    again = merge_results([tmp_path / "again.csv", a])
    assert again["run"].unique().tolist() == [str(a), str(b)] and len(again) == len(merged) + len(results_frame(a))
    with pytest.raises(FileNotFoundError, match="no results.json"):
        results_frame(tmp_path / "missing")
