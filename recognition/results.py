"""Tidy results: every number of a run's evaluation as one table -> `<run>/results.parquet` and `results.csv`.

`recognition.evaluation` writes results.json (nested: arms -> pair sets -> metrics -> ...). This module flattens
it into one long table with one row per number, written beside the report (`write_report` calls
`write_results`); the report's summary, headline and tables are read from these rows, so what you load is what
the report shows. Load it with `pd.read_parquet("data/runs/demo/results.parquet")` (or `read_results`, which
also reads the CSV with the right types), or several runs at once with `merge_results` / `faceaug results`.

Row kinds (column `kind`):

* `pair_set`   one per pair set of every protocol: its description and pair counts (and why it was not scored);
* `training`   one per arm, seed and training figure (`metric`: steps, train_seconds, images_per_s);
* `seed`       one seed's verifier scored on all pairs of a pair set (`seed` set), per metric;
* `estimate`   the arm's estimate pooled over seeds (`value` = mean over seeds) with its interval;
* `roc`        the pooled ROC on the report's FAR grid: `far`, `value` = mean TAR, the band in ci_low/ci_high;
* `difference` a paired difference `arm` - `reference` (`family`: "vs no-edit control" or "vs baseline"),
  with interval, p-value, raw and Holm-adjusted verdict and the minimal detectable difference;
* `fraction`   the share (E - C) / (P - C) of the positive control's gain that an edited arm captures
  (`reference` = the no-edit control C, `positive` = the positive control P; undefined rows say why in `note`).

Metrics: `auc`, `eer` (lower is better), `tar@far=<level>` (with `far` = the level), `accuracy@10-fold` (LFW's
10-fold protocol: threshold chosen on nine folds; per seed and mean over seeds, no interval).

Columns (pandas dtype; missing values are null): see `SCHEMA` below, and docs/results-schema.md.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.config import split_arm

PARQUET, CSV = "results.parquet", "results.csv"
CONTROL_FAMILY, BASELINE_FAMILY = "vs no-edit control", "vs baseline"
TENFOLD = "accuracy@10-fold"

# column -> (pandas dtype, meaning). The order is the column order of every table.
SCHEMA: dict[str, tuple[str, str]] = {
    "kind": ("string", "row type: pair_set, training, seed, estimate, roc, difference, fraction"),
    "arm": ("string", "the verifier arm (baseline, aug-<attribute>[@<editor>], aug-all[@<editor>]); null on pair_set rows"),
    "editor": ("string", "the editor that produced the arm's augmentation (null for the baseline)"),
    "attribute": ("string", "the edited attribute(s) of the arm, comma-separated (null for the baseline)"),
    "seed": ("Int64", "training seed of the verifier (training and seed rows)"),
    "protocol": ("string", "the registered protocol of the pair set (celeba, lfw, celeba-cross, lfw-cross)"),
    "test_set": ("string", "the test images the pairs come from (celeba or lfw)"),
    "pair_set": ("string", "the pair set: a protocol, or <protocol>/<attribute>/differ (or /agree) for the crossing pairs"),
    "metric": ("string", "auc, eer, tar@far=<level>, accuracy@10-fold; tar on roc rows; steps, train_seconds, "
               "images_per_s on training rows"),
    "far": ("float64", "the FAR level of a tar@far metric, or of a roc row's grid point"),
    "value": ("float64", "the number: per-seed value, pooled mean, difference (arm - reference), fraction, or figure"),
    "ci_low": ("float64", "lower end of the interval (confidence in `confidence`)"),
    "ci_high": ("float64", "upper end of the interval"),
    "se": ("float64", "standard error: test sampling (identity bootstrap) and seeds together"),
    "seed_sd": ("float64", "standard deviation of the per-seed values (null with one seed)"),
    "reference": ("string", "difference: the arm subtracted; fraction: the no-edit control"),
    "positive": ("string", "fraction: the positive control (the true edit) whose gain is the denominator"),
    "family": ("string", "difference: the multiple-comparison family (vs no-edit control, vs baseline)"),
    "p_value": ("float64", "difference: two-sided p-value of no difference (null when not resolvable)"),
    "adjusted_p": ("float64", "difference: Holm-adjusted p-value within its family"),
    "verdict": ("string", "difference: gain, loss, no measurable difference, not resolvable, too few seeds for a verdict "
                "(uncorrected)"),
    "adjusted_verdict": ("string", "difference: the verdict after Holm adjustment (the headline's)"),
    "mdd": ("float64", "difference: minimal detectable difference, the smallest absolute difference this comparison "
            "finds with probability `power`"),
    "resolvable": ("boolean", "false when the pair set has too few impostor pairs to read the metric's FAR level"),
    "higher_is_better": ("boolean", "the metric's direction (false for eer)"),
    "confidence": ("float64", "the interval's confidence level (e.g. 0.95)"),
    "power": ("float64", "difference: the power the mdd is computed for (e.g. 0.8)"),
    "seeds": ("Int64", "how many seeds the estimate or difference pools"),
    "genuine": ("Int64", "genuine (same-identity) pairs in the pair set"),
    "impostors": ("Int64", "impostor pairs in the pair set"),
    "identities": ("Int64", "test identities (the bootstrap's resampling units) in the pair set"),
    "folds": ("Int64", "folds of the pair set (LFW's 10-fold protocol), null otherwise"),
    "description": ("string", "pair_set rows: what the pairs are"),
    "note": ("string", "why a pair set was not scored, or why a fraction is not defined"),
}
RUN_COLUMN = ("string", "merge_results only: the run directory the row comes from")
COLUMNS = list(SCHEMA)


def editor_of(arm: str, config: dict | None) -> str | None:
    """The editor behind an arm's augmentation: `aug-x@<editor>`'s, else the run's editor (None for the baseline)."""
    base, editor = split_arm(arm)
    if base == "baseline":
        return None
    return editor or (config or {}).get("editor", {}).get("name", "sagan")


def attributes_of(arm: str, config: dict | None) -> list[str]:
    base = split_arm(arm)[0]
    if base == "aug-all":
        return list((config or {}).get("editor", {}).get("attributes", []))
    return [base.removeprefix("aug-")] if base.startswith("aug-") else []


def _far_of(metric: str) -> float | None:
    return float(metric.split("=", 1)[1]) if metric.startswith("tar@far=") else None


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def results_table(results: dict, config: dict | None = None) -> pd.DataFrame:
    """The tidy table of one run's results.json (a dict; `config`: the run's config.json, for editor names)."""
    rows: list[dict] = []
    protocols = results.get("protocols", {})
    seeds = list(results.get("seeds", []))
    confidence, power = results.get("confidence"), results.get("power")

    def pair_set(name: str) -> dict:
        info = protocols.get(name, {})
        return {"pair_set": name, "protocol": info.get("protocol"), "test_set": info.get("test_set"),
                "genuine": info.get("genuine"), "impostors": info.get("impostors"), "identities": info.get("identities"),
                "folds": info.get("folds")}

    def arm_cols(arm: str) -> dict:
        return {"arm": arm, "editor": editor_of(arm, config), "attribute": ", ".join(attributes_of(arm, config)) or None}

    def metric_cols(name: str, metric: str) -> dict:
        return {"metric": metric, "far": _far_of(metric), "higher_is_better": metric != "eer",
                "resolvable": protocols.get(name, {}).get("resolvable", {}).get(metric, True)}

    for name, info in protocols.items():
        rows.append({"kind": "pair_set", **pair_set(name), "description": info.get("description"), "note": info.get("note")})
    far_grid = results.get("far_grid", [])
    for arm, r in results.get("arms", {}).items():
        for seed, t in zip(seeds, r.get("training", [])):
            for metric, key in (("steps", "steps"), ("train_seconds", "wall_s_this_session"), ("images_per_s", "images_per_s")):
                if t and t.get(key) is not None:
                    rows.append({"kind": "training", **arm_cols(arm), "seed": seed, "metric": metric, "value": t[key]})
        for name, entry in r.get("protocols", {}).items():
            for metric, m in entry["metrics"].items():
                common = {**arm_cols(arm), **pair_set(name), **metric_cols(name, metric), "confidence": confidence}
                for seed, v in zip(seeds, m.get("seed_values", [])):
                    rows.append({"kind": "seed", **common, "seed": seed, "value": v})
                rows.append({"kind": "estimate", **common, "value": m["mean"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                             "se": m.get("se"), "seed_sd": m.get("seed_sd"), "seeds": len(m.get("seed_values", []))})
            if "tenfold" in entry:
                common = {**arm_cols(arm), **pair_set(name), "metric": TENFOLD, "higher_is_better": True}
                per_seed = entry["tenfold"]["per_seed"]
                for seed, acc in zip(seeds, per_seed):
                    rows.append({"kind": "seed", **common, "seed": seed, "value": acc["accuracy_mean"]})
                rows.append({"kind": "estimate", **common, "value": entry["tenfold"]["accuracy_mean"], "seeds": len(per_seed)})
            roc = entry.get("roc")
            if roc:
                for far, mean, lo, hi in zip(far_grid, roc["tar_mean"], roc["tar_low"], roc["tar_high"]):
                    rows.append({"kind": "roc", **arm_cols(arm), **pair_set(name), "metric": "tar", "far": far, "value": mean,
                                 "ci_low": lo, "ci_high": hi, "higher_is_better": True, "confidence": confidence})
    for family, source in ((CONTROL_FAMILY, "control_differences"), (BASELINE_FAMILY, "differences")):
        for arm, by_set in results.get(source, {}).items():
            for name, by_metric in by_set.items():
                for metric, d in by_metric.items():
                    rows.append({"kind": "difference", **arm_cols(arm), **pair_set(name), **metric_cols(name, metric),
                                 "reference": d["reference"], "family": family, "value": d["diff_mean"], "ci_low": d["ci_low"],
                                 "ci_high": d["ci_high"], "se": d.get("se"), "seed_sd": d.get("seed_sd"), "p_value": d.get("p_value"),
                                 "adjusted_p": d.get("adjusted_p"), "verdict": d["verdict"],
                                 "adjusted_verdict": d.get("adjusted_verdict", d["verdict"]), "mdd": d.get("mdd"),
                                 "resolvable": d.get("resolvable", True), "confidence": d.get("confidence", confidence),
                                 "power": power, "seeds": d.get("seeds")})
    controls = results.get("control_differences", {})
    for arm, by_set in results.get("positive_control_fraction", {}).items():
        for name, by_metric in by_set.items():
            for metric, f in by_metric.items():
                c = controls.get(arm, {}).get(name, {}).get(metric, {})
                rows.append({"kind": "fraction", **arm_cols(arm), **pair_set(name), **metric_cols(name, metric),
                             "reference": c.get("reference"), "positive": _positive_of(arm, controls),
                             "value": f.get("fraction"), "ci_low": f.get("ci_low"), "ci_high": f.get("ci_high"),
                             "se": f.get("se"), "note": f.get("note") or None, "confidence": confidence})
    return _typed(pd.DataFrame.from_records([{k: _clean(v) for k, v in row.items()} for row in rows], columns=COLUMNS))


def _positive_of(arm: str, controls: dict) -> str | None:
    base = split_arm(arm)[0]
    return next((a for a in controls if split_arm(a) == (base, "counterfactual")), None)


def _clean(v):
    return _num(v) if isinstance(v, float) else v


def _typed(frame: pd.DataFrame, schema: dict | None = None) -> pd.DataFrame:
    schema = schema or SCHEMA
    return frame.astype({c: schema[c][0] for c in frame.columns if c in schema})


def _schema_with_run() -> dict:
    return {"run": RUN_COLUMN, **SCHEMA}


def write_results(run_dir: str | Path, results: dict, config: dict | None = None) -> pd.DataFrame:
    """Write `<run_dir>/results.parquet` and `results.csv` (each beside its final name, then renamed); returns the table."""
    run_dir = Path(run_dir)
    frame = results_table(results, config)
    for name, write in ((PARQUET, lambda p: frame.to_parquet(p, index=False)), (CSV, lambda p: frame.to_csv(p, index=False))):
        tmp = run_dir / f".{name}.tmp"
        write(tmp)
        tmp.replace(run_dir / name)
    return frame


def read_results(path: str | Path) -> pd.DataFrame:
    """A results table from results.parquet or results.csv (or a merged one), with the schema's types."""
    path = Path(path)
    schema = _schema_with_run()
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        # Only an empty field is missing: a note reading "n/a" or "None" stays text.
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""],
                            dtype={c: ("string" if t == "boolean" else t) for c, (t, _) in schema.items()})
        for c, (t, _) in schema.items():
            if t == "boolean" and c in frame:
                frame[c] = frame[c].map({"True": True, "False": False}, na_action="ignore")
    else:
        raise ValueError(f"{path}: not a results table (expected .parquet or .csv)")
    unknown = [c for c in frame.columns if c not in schema]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; not a faceaug results table")
    return _typed(frame, schema)


def results_frame(run_dir: str | Path) -> pd.DataFrame:
    """One run's results table: built from `<run_dir>/results.json` (the source), else read from results.parquet/.csv
    (a run directory shared without its JSON, or the path of one of those files)."""
    from pipeline.atomic import read_json

    run_dir = Path(run_dir)
    if run_dir.is_file():
        return read_results(run_dir)
    results = read_json(run_dir / "results.json")
    if results is not None:
        return results_table(results, read_json(run_dir / "config.json"))
    for name in (PARQUET, CSV):
        if (run_dir / name).exists():
            return read_results(run_dir / name)
    raise FileNotFoundError(f"{run_dir}: no results.json, {PARQUET} or {CSV}; run `faceaug evaluate` (and `faceaug report`) first")


def merge_results(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The results of several runs in one table, with a leading `run` column (the directory as given)."""
    if not dirs:
        raise ValueError("no run directories given")
    frames = []
    for d in dirs:
        frame = results_frame(d)
        if "run" in frame.columns:  # an already merged table keeps its runs
            frames.append(frame)
            continue
        frames.append(frame.assign(run=str(d))[["run", *frame.columns]])
    merged = pd.concat(frames, ignore_index=True)
    return _typed(merged, _schema_with_run())


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a (merged) results table as .parquet or .csv, by the name's suffix."""
    out = Path(out)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        raise ValueError(f"{out}: write .parquet or .csv")
    return out


def print_results(dirs: Sequence[str | Path], out: str | Path | None = None, file=None, metric: str = "auc") -> pd.DataFrame:
    """`faceaug results DIR...`: each run's arms on the standard protocols and its differences from the no-edit
    control, in `metric`, as text on `file` (stdout); with `out`, the merged table written as .parquet or .csv."""
    file = file or sys.stdout
    merged = merge_results(dirs)
    if out is not None:
        write_table(merged, out)
    for run, frame in merged.groupby("run", sort=False):
        arms = frame["arm"].dropna().unique()
        seeds = frame.loc[frame["kind"] == "seed", "seed"].dropna().unique()
        print(f"== {run}: {len(arms)} arms x {len(seeds)} seeds, {len(frame)} rows", file=file)
        est = frame[(frame["kind"] == "estimate") & (frame["metric"] == metric)]
        if not est.empty:
            cells = est.assign(cell=[interval_text(r.value, r.ci_low, r.ci_high) for r in est.itertuples()])
            table = cells.pivot(index="arm", columns="pair_set", values="cell")
            standard = [c for c in ("celeba", "lfw") if c in table.columns] or list(table.columns)
            table = table.reindex(index=[a for a in arms if a in table.index], columns=standard)
            print(_text_table([f"{metric} [{_confidence(frame):.0%} CI]", *standard],
                              [[arm, *table.loc[arm].fillna("").tolist()] for arm in table.index]), file=file)
        diff = frame[(frame["kind"] == "difference") & (frame["family"] == CONTROL_FAMILY) & (frame["metric"] == metric)]
        diff = diff[[_is_key(r.pair_set, r.attribute) for r in diff.itertuples()]]
        if not diff.empty:
            print(f"Δ {metric} vs the no-edit control (verdict Holm-adjusted; MDD: the smallest difference it would detect)", file=file)
            print(_text_table(["arm", "pairs", "difference", "verdict", "MDD"],
                              [[r.arm, r.pair_set, interval_text(r.value, r.ci_low, r.ci_high, sign=True), r.adjusted_verdict,
                                f"±{r.mdd:.4f}"] for r in diff.itertuples()]), file=file)
        print(file=file)
    if out is not None:
        print(f"merged table ({len(merged)} rows): {out}", file=file)
    return merged


def _text_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    return "\n".join("  " + "  ".join(f"{str(x):<{w}}" for x, w in zip(line, widths)).rstrip() for line in [columns, *rows])


def _is_key(pair_set: str, attribute) -> bool:
    """The standard protocols, and the pairs that cross the arm's own attribute(s)."""
    parts = pair_set.split("/")
    return len(parts) == 1 or (parts[-1] == "differ" and not pd.isna(attribute) and parts[1] in attribute.split(", "))


def _confidence(frame: pd.DataFrame) -> float:
    values = frame["confidence"].dropna()
    return float(values.iloc[0]) if len(values) else 0.95


def interval_text(value, low, high, digits: int = 4, sign: bool = False) -> str:
    """'0.9312 [0.9201, 0.9410]' (with `sign`: '+0.0012 [-0.0030, +0.0054]'); 'n/a' without a value."""
    if value is None or pd.isna(value):
        return "n/a"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    value, low, high = (None if v is None or pd.isna(v) else round(float(v), digits) + 0.0 for v in (value, low, high))  # no -0.0000
    if low is None or high is None:
        return f.format(value)
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows as dicts with None for missing values and plain Python numbers (what the report formats)."""
    out = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in out]
