"""The run report: `faceaug report RUN_DIR` -> report.html (self-contained), report.md, report.json.

It answers first: for every edited arm, its difference from the **no-edit control** (same rows and
passes, no edit) on the standard protocols and on the pairs that cross its attribute, with the
Holm-adjusted verdict, the uncorrected one beside it, the smallest difference the run could have
seen, and the share of the positive control's gain (the true edit) it captures. Then one compact
table per protocol (arms x metrics), every comparison, ROC figures and a forest plot of the
differences (`report_html.py`), the editors' quality and edits, and the config, timings and versions folded
at the bottom. Every number the report shows is read from the run's tidy results table (`recognition.results`:
results.parquet / results.csv, built from the results.json that `recognition.evaluation` writes).
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from pipeline.layout import EDITOR_JSON, EVALUATION_JSON, IDENTITY_JSON, SELECTION_JSON, RunLayout
from recognition.evaluation import POSITIVE_EDITOR
from recognition.results import (BASELINE_FAMILY, CONTROL_FAMILY, CSV, PARQUET, TENFOLD, interval_text, records,
                                 results_table, write_results)
from recognition.results import attributes_of as _attributes_of
from recognition.results import editor_of as _editor_of

PRIMARY = "auc"  # the metric the headline speaks in
TOO_FEW = "too few seeds for a verdict"


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def software_versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("faceaug", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "matplotlib",
                "prefect", "pydantic"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def collect(run_dir: Path) -> dict:
    """Everything the report shows, as one JSON-able dict."""
    run_dir = Path(run_dir)
    layout = RunLayout.of_run(run_dir)
    results = _load(layout.results)
    if results is None:
        raise FileNotFoundError(f"{layout.results}: no results; run `faceaug evaluate` first")
    editors = {}
    for d in layout.editor_dirs():
        meta = _load(d / EDITOR_JSON)
        editors[d.name] = {"evaluation": _load(d / EVALUATION_JSON), "identity": _load(d / IDENTITY_JSON),
                           "editor": {k: meta.get(k) for k in ("editor", "attribute", "iterations", "checkpoint_id", "selection")} if meta else None,
                           "selection": _load(d / SELECTION_JSON)}  # the validation curve the checkpoint was chosen from
    comparisons = {d.name: _load(d / "compare.json") for d in sorted((run_dir / "compare").glob("*")) if (d / "compare.json").exists()}
    timings = {arm: [t.get("wall_s_this_session") if t else None for t in r.get("training", [])] for arm, r in results["arms"].items()}
    return {"run_dir": str(run_dir), "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "config": _load(layout.config),
            "data_summary": _load(layout.data_summary), "results": results, "editors": editors, "comparisons": comparisons,
            "timings": {"verifier_training_seconds": timings, "stages": _load(layout.timings)}, "software": software_versions()}


# ---- formatting ---------------------------------------------------------------------------------------

def fmt_value(m: dict | None, digits: int = 4) -> str:
    """An estimate from results.json ('mean', 'ci_low', 'ci_high') as '0.9312 [0.9201, 0.9410]'."""
    return interval_text(m.get("mean"), m.get("ci_low"), m.get("ci_high"), digits) if m else "n/a"


def fmt_diff(d: dict | None, digits: int = 4) -> str:
    """A difference from results.json ('diff_mean', ...) as '+0.0012 [-0.0030, +0.0054]'."""
    return interval_text(d.get("diff_mean"), d.get("ci_low"), d.get("ci_high"), digits, sign=True) if d else "n/a"


def fmt_fraction(f: dict | None) -> str:
    """A fraction row of the results table as '35% [10, 60]', or the reason it is not defined."""
    if not f:
        return ""
    if f.get("value") is None:  # the reason is the row's note
        return "undefined" if (f.get("note") or "").startswith("not defined") else "n/a"
    return f"{100 * f['value']:.0f}% [{100 * f['ci_low']:.0f}, {100 * f['ci_high']:.0f}]"


def _row_diff(r: dict | None) -> str:
    return interval_text(r["value"], r["ci_low"], r["ci_high"], sign=True) if r else "n/a"


def editor_of(arm: str, report: dict) -> str:
    return _editor_of(arm, report.get("config")) or ""


def attributes_of(arm: str, report: dict) -> list[str]:
    return _attributes_of(arm, report.get("config"))


def table(report: dict, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's tidy results table (`recognition.results`): every number the report shows is one of its rows."""
    return frame if frame is not None else results_table(report["results"], report.get("config"))


def key_pair_sets(arm: str, report: dict, scored: set[str] | None = None) -> list[str]:
    """The pair sets a headline about `arm` reads: the standard protocols, then the pairs crossing its attribute(s)."""
    available = scored if scored is not None else set(report["results"]["arms"].get(arm, {}).get("protocols", {}))
    wanted = ["celeba", "lfw"] + [f"{p}/{a}/differ" for a in attributes_of(arm, report) for p in ("celeba-cross", "lfw-cross")]
    return [name for name in wanted if name in available]


def headline(report: dict, frame: pd.DataFrame | None = None) -> list[dict]:
    """One row per edited arm and key pair set, in the primary metric, read from the results table: the difference from
    the no-edit control (Holm-adjusted and uncorrected verdicts, MDD), the difference from the baseline beside it, and
    the share of the positive control's gain."""
    t = table(report, frame)
    cells = records(t[t["kind"].isin(["difference", "fraction"]) & (t["metric"] == PRIMARY)])
    index = {(r["kind"], r["family"], r["arm"], r["pair_set"]): r for r in cells}
    arms = list(dict.fromkeys(r["arm"] for r in cells if r["family"] == CONTROL_FAMILY))
    rows = []
    for arm in arms:
        scored = {r["pair_set"] for r in cells if r["arm"] == arm and r["family"] == CONTROL_FAMILY}
        for name in key_pair_sets(arm, report, scored):
            d = index[("difference", CONTROL_FAMILY, arm, name)]
            b = index.get(("difference", BASELINE_FAMILY, arm, name))
            f = index.get(("fraction", None, arm, name))
            rows.append({"arm": arm, "editor": d["editor"] or "", "attribute": d["attribute"] or "", "pair_set": name,
                         "metric": PRIMARY, "control": d["reference"], "difference": _row_diff(d), "diff_mean": d["value"],
                         "ci_low": d["ci_low"], "ci_high": d["ci_high"], "verdict": d["verdict"],
                         "adjusted_verdict": d["adjusted_verdict"], "p_value": d["p_value"], "adjusted_p": d["adjusted_p"],
                         "mdd": d["mdd"], "vs_baseline": _row_diff(b), "vs_baseline_verdict": b["adjusted_verdict"] if b else "",
                         "vs_baseline_diff": None if b is None else {k: b[k] for k in ("value", "ci_low", "ci_high")},
                         "positive_control_fraction": fmt_fraction(f), "fraction": f["value"] if f else None})
    return rows


def summary_blocks(report: dict, frame: pd.DataFrame | None = None) -> list[dict]:
    """The answer, for the top of every form of the report: blocks of {lead, answer, items, verdicts}. Per edited arm: does
    it beat its no-edit control, then one item per key pair set with the interval and the smallest difference the run
    would have seen (MDD)."""
    res = report["results"]
    seeds = res["seeds"]
    t = table(report, frame)
    blocks = [{"lead": f"Budget: {_budget(res)}. Seeds: {', '.join(map(str, seeds))}. Intervals: {res['confidence']:.0%} "
                       "(test identities resampled, plus the seeds' spread). Verdicts: the interval excludes zero."}]
    if len(seeds) < 2:
        blocks.append({"lead": f"Only {len(seeds)} seed per arm: training randomness cannot be estimated, so no difference is "
                               "called a gain or a loss ('too few seeds for a verdict'); the intervals shown cover test sampling "
                               "only. Use several seeds (the evidence profile has 3) before concluding anything."})
    rows = headline(report, t)
    if not rows:
        blocks.append({"lead": "No edited arm has its no-edit control (aug-<attribute>@identity) in this run, so no edit can be "
                               "separated from the extra samples it adds; differences from the baseline are in the tables below."})
    power = res.get("power", 0.8)
    for arm, group in _grouped(rows):
        first = group[0]
        calls = {v: [r["pair_set"] for r in group if r["adjusted_verdict"] == v] for v in ("gain", "loss")}
        answer = "; ".join(f"{'helps' if v == 'gain' else 'hurts'} on {', '.join(sets)}" for v, sets in calls.items() if sets) \
            or f"no measurable effect on any of {len(group)} pair set{'s' if len(group) > 1 else ''}"
        what = "the true edit (positive control)" if first["editor"] == "counterfactual" else f"{first['editor']} edits"
        items = []
        for r in group:
            raw = "" if r["verdict"] == r["adjusted_verdict"] else f" (uncorrected: {r['verdict']})"
            share = f"; share of the true edit's gain {r['positive_control_fraction']}" if r["fraction"] is not None else ""
            items.append(f"{r['pair_set']}: {r['difference']}, {r['adjusted_verdict']}{raw}; a difference of ±{r['mdd']:.4f} "
                         f"would have been seen ({100 * power:.0f}% power){share}.")
        blocks.append({"lead": f"{first['attribute']}, {what} ({arm}) vs its no-edit control ({first['control']}), "
                               f"Δ {PRIMARY.upper()}:", "answer": f"{answer}.", "items": items,
                       "verdicts": [r["adjusted_verdict"] for r in group]})
    sensitivity = _sensitivity(rows, len(seeds), t)
    if sensitivity:
        blocks.append({"lead": sensitivity})
    fams = res.get("multiple_comparisons", {}).get("families", {})
    if fams:
        blocks.append({"lead": "Multiple comparisons: Holm-adjusted within each family (" +
                               "; ".join(f"{name}: {n} tests" for name, n in fams.items()) +
                               "); the verdicts above are the adjusted ones."})
    return blocks


def positive_control_tests(t: pd.DataFrame, metric: str = PRIMARY, editor: str = POSITIVE_EDITOR) -> list[dict]:
    """The sensitivity family: each positive control (the true edit) against its no-edit control on the CelebA-format
    pairs that differ in its attribute, one test per attribute, Holm-adjusted over these tests alone (`family_p`,
    `family_verdict`). The report's Holm over every comparison against the control is stricter; both are shown. This
    family was fixed for the stress setting's evidence run before it was scored (docs/verification.md). With another
    `editor` (e.g. "sagan"), the same family of that editor's single-attribute arms."""
    from recognition.intervals import holm, p_verdict

    d = t[(t["kind"] == "difference") & (t["family"] == CONTROL_FAMILY) & (t["editor"] == editor)
          & (t["metric"] == metric) & t["p_value"].notna()]
    d = d[d["pair_set"] == "celeba-cross/" + d["attribute"].fillna("") + "/differ"]
    cells = records(d.sort_values("attribute"))
    for r, p in zip(cells, holm([r["p_value"] for r in cells])):
        r["family_p"], r["family_verdict"] = p, p_verdict(r["value"], r["higher_is_better"], p)
    return cells


def _sensitivity(rows: list[dict], seeds: int, t: pd.DataFrame) -> str | None:
    """Could this run have seen a benefit at all? Read from the positive controls (the true edit) on the pairs that
    cross their attribute; None when the run has no positive control."""
    positive = [(arm, group) for arm, group in _grouped(rows) if group[0]["editor"] == POSITIVE_EDITOR]
    if not positive:
        return None
    if seeds < 2:
        return "Sensitivity: with one seed, not even the true edit (positive control) can be called a gain, so this run cannot say whether any editor helps."
    shown = [group[0]["attribute"] for _, group in positive
             if any(r["adjusted_verdict"] == "gain" for r in group if r["pair_set"].endswith("/differ"))]
    text = (f"Sensitivity: the true edit (positive control) gains measurably over the no-edit control on the pairs crossing "
            f"its attribute for {len(shown)} of {len(positive)} attribute{'s' if len(positive) > 1 else ''}"
            + (f" ({', '.join(shown)})" if shown else "") + ".")
    family = positive_control_tests(t)
    if family:
        alone = [r["attribute"] for r in family if r["family_verdict"] == "gain"]
        text += (f" Holm over only its {len(family)} CelebA-format crossing-pair test{'s' if len(family) > 1 else ''} "
                 f"(the sensitivity family): {len(alone)} of {len(family)}" + (f" ({', '.join(alone)})" if alone else "") + ".")
    if not shown:
        return text + (" This run could not have shown a benefit of attribute augmentation by any editor: here an edited arm's "
                       "'no measurable effect' is not evidence that it does not help.")
    if len(shown) < len(positive):
        return text + " For the other attributes an edited arm's 'no measurable effect' is not evidence that it does not help."
    return text


def summary_lines(report: dict, frame: pd.DataFrame | None = None, blocks: list[dict] | None = None) -> list[str]:
    """The answer in sentences (`summary_blocks`, one line each)."""
    return [" ".join([b["lead"]] + ([b["answer"]] if b.get("answer") else []) + b.get("items", []))
            for b in (blocks if blocks is not None else summary_blocks(report, frame))]


def _grouped(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["arm"], []).append(r)
    return list(out.items())


def _budget(res: dict) -> str:
    if res["budget"] == "equal_steps":
        return f"equal compute, every arm {res['steps']} optimiser steps with the same schedule"
    return f"equal epochs, every arm {res['epochs']} passes over its own data (augmented arms take more steps)"


def protocol_tables(report: dict, frame: pd.DataFrame | None = None) -> list[dict]:
    """One compact table per pair set, from the results table's estimate rows: arms as rows, metrics (and 10-fold
    accuracy where there are folds) as columns, each cell the mean over seeds with its interval."""
    res = report["results"]
    t = table(report, frame)
    estimates = records(t[t["kind"] == "estimate"])
    tables = []
    for name, info in res["protocols"].items():
        columns, rows, by_arm = ["arm"], [], {}
        for e in (e for e in estimates if e["pair_set"] == name):
            row = by_arm.setdefault(e["arm"], {"arm": e["arm"]})
            if e["metric"] == TENFOLD:
                row["10-fold accuracy"] = interval_text(e["value"], None, None)
            else:
                row[e["metric"] if e["resolvable"] else f"{e['metric']} (not resolvable)"] = interval_text(
                    e["value"], e["ci_low"], e["ci_high"])
        for row in by_arm.values():
            rows.append(row)
            columns += [c for c in row if c not in columns]
        tables.append({"pair_set": name, "info": info, "columns": columns, "rows": rows})
    return tables


def comparison_rows(report: dict, frame: pd.DataFrame | None = None) -> list[dict]:
    """Every paired difference, from the results table: vs the no-edit control first, then vs the baseline."""
    t = table(report, frame)
    rows = []
    for family in (CONTROL_FAMILY, BASELINE_FAMILY):
        for d in records(t[(t["kind"] == "difference") & (t["family"] == family)]):
            rows.append({"family": family, "arm": d["arm"], "reference": d["reference"], "pair_set": d["pair_set"],
                         "metric": d["metric"], "difference": _row_diff(d), "verdict": d["verdict"],
                         "adjusted_verdict": d["adjusted_verdict"],
                         "p": None if d["p_value"] is None else round(d["p_value"], 4),
                         "adjusted_p": None if d["adjusted_p"] is None else round(d["adjusted_p"], 4),
                         "mdd": None if d["mdd"] is None else round(d["mdd"], 4)})
    return rows


def write_report(run_dir: str | Path) -> dict:
    """Write results.parquet / results.csv (the tidy table), then report.json, report.md and report.html, whose numbers
    are read from that table, into `run_dir`; returns the report dict."""
    from recognition.report_html import figures, page

    run_dir = Path(run_dir)
    report = collect(run_dir)
    frame = write_results(run_dir, report["results"], report["config"])
    report["results_table"] = {"parquet": PARQUET, "csv": CSV, "rows": len(frame),
                               "kinds": {k: int(n) for k, n in frame["kind"].value_counts(sort=False).items()}}
    report["headline"] = headline(report, frame)
    report["summary_blocks"] = summary_blocks(report, frame)
    report["summary"] = summary_lines(report, blocks=report["summary_blocks"])
    report["tables"] = protocol_tables(report, frame)
    report["comparisons_table"] = comparison_rows(report, frame)
    pictures = figures(report)
    for name, data in pictures.items():
        (run_dir / f"{name}.png").write_bytes(data)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(markdown(report, sorted(pictures)))
    (run_dir / "report.html").write_text(page(report, pictures, run_dir))
    return report


HEADLINE_COLUMNS = ["arm", "editor", "pairs", f"Δ {PRIMARY.upper()} vs no-edit control", "verdict (Holm)", "detectable (MDD)",
                    "share of true edit's gain", "Δ vs baseline", "vs baseline (Holm)"]
def headline_note(report: dict) -> str:
    return (f"MDD: the smallest difference the run would have detected ({report['results'].get('power', 0.8):.0%} power). "
            "Share of the true edit's gain: (edit - control) / (true edit - control), undefined when the true edit (the "
            "positive control) shows no measurable gain over the control.")


def headline_cells(r: dict) -> list[str]:
    """A headline row as the report's table shows it (markdown and HTML alike)."""
    verdict = r["adjusted_verdict"] + ("" if r["verdict"] == r["adjusted_verdict"] else f" (uncorrected: {r['verdict']})")
    return [r["arm"], r["editor"], r["pair_set"], r["difference"], verdict, f"±{r['mdd']:.4f}", r["positive_control_fraction"],
            r["vs_baseline"], r["vs_baseline_verdict"]]


def is_standard(pair_set: str) -> bool:
    return "/" not in pair_set


def pair_set_caption(info: dict) -> str:
    return (f"{info['description']}: {info['genuine']:,} genuine and {info['impostors']:,} impostor pairs"
            + (f", {info['identities']:,} identities" if info.get("identities") else ""))


def markdown_table(columns: list[str], rows: list[list]) -> list[str]:
    """The lines of a Markdown table (None cells empty); the scripts under scripts/ print theirs with it too."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]


def markdown(report: dict, figure_names: list[str]) -> str:
    out = [f"# faceaug report — {report['run_dir']}", "", f"Generated {report['generated']}.", "", "## Answer", ""]
    out += [f"- {line}" for line in report["summary"]] + [""]
    if report["headline"]:
        out += markdown_table(HEADLINE_COLUMNS, [headline_cells(r) for r in report["headline"]]) + ["", headline_note(report)]
    out += ["", "## Protocols", "", "Each cell: the mean over seeds [95% interval]. Figures: "
            + ", ".join(f"`{n}.png`" for n in figure_names) + " (embedded in report.html)."]
    for t in sorted(report["tables"], key=lambda t: not is_standard(t["pair_set"])):
        info = t["info"]
        out += ["", f"### {t['pair_set']}", "", pair_set_caption(info) + "."]
        if info.get("note"):
            out.append(f"**{info['note']}**")
        if t["rows"]:
            out += [""] + markdown_table(t["columns"], [[row.get(c, "") for c in t["columns"]] for row in t["rows"]])
    out += ["", "## Every comparison", ""]
    out += markdown_table(["family", "arm", "reference", "pairs", "metric", "difference [95% CI]", "verdict", "Holm", "p", "adj. p", "MDD"],
                     [[r["family"], r["arm"], r["reference"], r["pair_set"], r["metric"], r["difference"], r["verdict"],
                       r["adjusted_verdict"], r["p"], r["adjusted_p"], r["mdd"]] for r in report["comparisons_table"]])
    out += ["", "## Editors", ""]
    for name, e in report["editors"].items():
        out.append(f"- {name}: {editor_line(e)}")
        chosen = selection_line(e)
        if chosen:
            out.append(f"  - {chosen}")
    if report.get("comparisons"):
        from editing.compare import comparison_markdown

        out += ["", "## Editors compared (`faceaug editors compare`)", ""]
        for attribute, summary in report["comparisons"].items():
            out += [comparison_markdown(summary), f"Grid: `compare/{attribute}/grid.png`.", ""]
    out += ["", "## Reuse the numbers", "", reuse_text(report), ""]
    for title, obj in (("Method", report["results"].get("method")), ("Timings", report["timings"]),
                       ("Software", report["software"]), ("Config", report["config"])):
        out += [f"<details><summary>{title}</summary>", "", "```", obj if isinstance(obj, str) else json.dumps(obj, indent=2),
                "```", "", "</details>", ""]
    return "\n".join(out)


def reuse_text(report: dict) -> str:
    n = report.get("results_table", {}).get("rows", 0)
    return (f"Every number above is a row of `{PARQUET}` (and `{CSV}`) beside this report ({n} rows; columns in "
            "docs/results-schema.md): `pd.read_parquet(\"results.parquet\")`, or `faceaug results RUN_DIR...` to compare runs.")


def editor_line(e: dict) -> str:
    """One editor's measured quality in a sentence."""
    ev = e.get("evaluation")
    if not ev:
        return "not evaluated"
    parts = [f"added {_rate(ev.get('added'))}", f"removed {_rate(ev.get('removed'))}"]
    p = ev.get("preservation", {})
    if "mean_abs_change_outside_region" in p:
        parts.append(f"change outside / inside the true region {p['mean_abs_change_outside_region']:.4f} / {p['mean_abs_change_inside_region']:.4f}")
    if ev.get("mask"):
        parts.append(f"mask mass inside the region {ev['mask']['mass_inside_region']:.3f}")
    truth = ev.get("counterfactual_error")
    if truth:
        parts.append(f"error to the true edit inside the region {truth['editor']['inside']['mae']:.4f} "
                     f"({100 * truth['ratio_inside']:.0f}% of doing nothing's {truth['no_edit']['inside']['mae']:.4f})")
    ident = e.get("identity")
    if ident:
        parts.append(f"identity cos(face, edit) {ident['original_vs_edited']:.3f}")
    parts.append(f"judge balanced accuracy {ev['judge_balanced_accuracy_on_real_test']:.3f}")
    return "; ".join(parts)


def selection_line(e: dict) -> str | None:
    """How the editor's checkpoint was chosen on the validation identities, with the curve of scores, or None
    when it was not (the last iteration is the editor)."""
    sel = e.get("selection")  # selection.json exists only when validation chose the checkpoint
    if not sel or sel.get("best_step") is None:
        return None
    iterations = (e.get("editor") or {}).get("iterations")
    stopped = f", stopped early at {sel['stopped_early_at']}" if sel.get("stopped_early_at") else ""
    curve = "; ".join(f"{c['step']}: {100 * c['weaker_direction']:.0f}% / {c['outside_change']:.4f}"
                      for c in sel.get("curve", []) if c.get("weaker_direction") is not None)
    return (f"checkpoint chosen on the validation identities: iteration {sel['best_step']}"
            + (f" of {iterations}" if iterations else "") + f"{stopped} ({sel.get('criterion', '')})"
            + (f". Validation curve (iteration: weaker direction's success / change outside the region): {curve}" if curve else ""))


def _rate(d: dict | None) -> str:
    if not d or d.get("success_rate") is None:
        return "n/a"
    lo, hi = d["success_ci95"]
    return f"{d['success_rate']:.1%} [{lo:.1%}, {hi:.1%}] of {d['images']}"
