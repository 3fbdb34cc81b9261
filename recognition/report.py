"""The run report: `faceaug report RUN_DIR` -> report.html (self-contained), report.md, report.json.

It answers first: for every edited arm, its difference from the **no-edit control** (same rows and
passes, no edit) on the standard protocols and on the pairs that cross its attribute, with the
Holm-adjusted verdict, the uncorrected one beside it, the smallest difference the run could have
seen, and the share of the positive control's gain (the true edit) it captures. Then one compact
table per protocol (arms x metrics), every comparison, ROC figures and a forest plot of the
differences (`report_html.py`), the editors' quality, and the config, timings and versions. Every
number the report shows comes from results.json (written by `recognition.evaluation`).
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

from pipeline.config import split_arm
from pipeline.layout import EDITOR_JSON, EVALUATION_JSON, IDENTITY_JSON, RunLayout

PRIMARY = "auc"  # the metric the headline speaks in
TOO_FEW = "too few seeds for a verdict"


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def software_versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("faceaug", "torch", "torchvision", "timm", "numpy", "scipy", "pyarrow", "prefect", "pydantic"):
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
                           "editor": {k: meta.get(k) for k in ("editor", "attribute", "iterations", "checkpoint_id", "selection")} if meta else None}
    comparisons = {d.name: _load(d / "compare.json") for d in sorted((run_dir / "compare").glob("*")) if (d / "compare.json").exists()}
    timings = {arm: [t.get("wall_s_this_session") if t else None for t in r.get("training", [])] for arm, r in results["arms"].items()}
    return {"run_dir": str(run_dir), "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "config": _load(layout.config),
            "data_summary": _load(layout.data_summary), "results": results, "editors": editors, "comparisons": comparisons,
            "timings": {"verifier_training_seconds": timings, "stages": _load(layout.timings)}, "software": software_versions()}


# ---- formatting ---------------------------------------------------------------------------------------

def fmt_value(m: dict | None, digits: int = 4) -> str:
    if not m or m.get("mean") is None:
        return "n/a"
    return f"{m['mean']:.{digits}f} [{m['ci_low']:.{digits}f}, {m['ci_high']:.{digits}f}]"


def fmt_diff(d: dict | None, digits: int = 4) -> str:
    if not d or d.get("diff_mean") is None:
        return "n/a"
    return f"{d['diff_mean']:+.{digits}f} [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"


def fmt_fraction(f: dict | None) -> str:
    if not f:
        return ""
    if f.get("fraction") is None:
        return f.get("note", "n/a")
    return f"{100 * f['fraction']:.0f}% [{100 * f['ci_low']:.0f}, {100 * f['ci_high']:.0f}]"


def editor_of(arm: str, report: dict) -> str:
    return split_arm(arm)[1] or (report.get("config") or {}).get("editor", {}).get("name", "sagan")


def attributes_of(arm: str, report: dict) -> list[str]:
    base = split_arm(arm)[0]
    if base == "aug-all":
        return list((report.get("config") or {}).get("editor", {}).get("attributes", []))
    return [base.removeprefix("aug-")] if base.startswith("aug-") else []


def key_pair_sets(arm: str, report: dict) -> list[str]:
    """The pair sets a headline about `arm` reads: the standard protocols, then the pairs crossing its attribute(s)."""
    available = report["results"]["arms"].get(arm, {}).get("protocols", {})
    wanted = ["celeba", "lfw"] + [f"{p}/{a}/differ" for a in attributes_of(arm, report) for p in ("celeba-cross", "lfw-cross")]
    return [name for name in wanted if name in available]


def headline(report: dict) -> list[dict]:
    """One row per edited arm and key pair set, in the primary metric: the difference from the no-edit control
    (Holm-adjusted and uncorrected verdicts, MDD), the difference from the baseline beside it, and the share of the
    positive control's gain."""
    res = report["results"]
    rows = []
    for arm, by_set in res.get("control_differences", {}).items():
        for name in key_pair_sets(arm, report):
            d = by_set.get(name, {}).get(PRIMARY)
            if d is None:
                continue
            b = res.get("differences", {}).get(arm, {}).get(name, {}).get(PRIMARY)
            f = res.get("positive_control_fraction", {}).get(arm, {}).get(name, {}).get(PRIMARY)
            rows.append({"arm": arm, "editor": editor_of(arm, report), "attribute": ", ".join(attributes_of(arm, report)),
                         "pair_set": name, "metric": PRIMARY, "control": d["reference"], "difference": fmt_diff(d),
                         "diff_mean": d["diff_mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "verdict": d["verdict"],
                         "adjusted_verdict": d.get("adjusted_verdict", d["verdict"]), "p_value": d["p_value"],
                         "adjusted_p": d.get("adjusted_p"), "mdd": d["mdd"], "vs_baseline": fmt_diff(b),
                         "vs_baseline_verdict": b["verdict"] if b else "", "positive_control_fraction": fmt_fraction(f)})
    return rows


def summary_lines(report: dict) -> list[str]:
    """The answer in sentences, for the top of every form of the report."""
    res = report["results"]
    seeds = res["seeds"]
    lines = [f"Budget: {_budget(res)}. Seeds: {', '.join(map(str, seeds))}. Intervals: {res['confidence']:.0%}; {res['method']}."]
    if len(seeds) < 2:
        lines.append(f"Only {len(seeds)} seed per arm: training randomness cannot be estimated, so no difference is called a "
                     "gain or a loss ('too few seeds for a verdict'); the intervals shown cover test sampling only. "
                     "Use several seeds (the evidence profile has 3) before concluding anything.")
    rows = headline(report)
    if not rows:
        lines.append("No edited arm has its no-edit control (aug-<attribute>@identity) in this run, so no edit can be "
                     "separated from the extra samples it adds; differences from the baseline are in the tables below.")
    for r in rows:
        mdd = f"a difference of ±{r['mdd']:.4f} would have been seen with {100 * res['power']:.0f}% power"
        share = r["positive_control_fraction"]
        frac = f"; share of the true edit's gain: {share}" if share else ""
        lines.append(f"{r['arm']} ({r['editor']}) vs its no-edit control on {r['pair_set']}: {PRIMARY.upper()} {r['difference']}: "
                     f"{r['adjusted_verdict']} (Holm; uncorrected: {r['verdict']}); {mdd}{frac}. "
                     f"Vs the baseline: {r['vs_baseline']} ({r['vs_baseline_verdict']}).")
    fams = res.get("multiple_comparisons", {}).get("families", {})
    if fams:
        lines.append("Multiple comparisons: Holm-adjusted within each family (" +
                     "; ".join(f"{name}: {n} tests" for name, n in fams.items()) + "); the headline verdicts are the adjusted ones.")
    return lines


def _budget(res: dict) -> str:
    if res["budget"] == "equal_steps":
        return f"equal compute, every arm {res['steps']} optimiser steps with the same schedule"
    return f"equal epochs, every arm {res['epochs']} passes over its own data (augmented arms take more steps)"


def protocol_tables(report: dict) -> list[dict]:
    """One compact table per pair set: arms as rows, metrics (and 10-fold accuracy where there are folds) as columns."""
    res = report["results"]
    tables = []
    for name, info in res["protocols"].items():
        columns = ["arm"]
        rows = []
        for arm, r in res["arms"].items():
            entry = r["protocols"].get(name)
            if entry is None:
                continue
            row = {"arm": arm}
            for metric, m in entry["metrics"].items():
                label = metric if info.get("resolvable", {}).get(metric, True) else f"{metric} (not resolvable)"
                row[label] = fmt_value(m)
            if "tenfold" in entry:
                row["10-fold accuracy"] = f"{entry['tenfold']['accuracy_mean']:.4f}"
            rows.append(row)
            columns += [c for c in row if c not in columns]
        tables.append({"pair_set": name, "info": info, "columns": columns, "rows": rows})
    return tables


def comparison_rows(report: dict) -> list[dict]:
    """Every paired difference: vs the no-edit control first, then vs the baseline."""
    res = report["results"]
    rows = []
    for family, source in (("vs no-edit control", "control_differences"), ("vs baseline", "differences")):
        for arm, by_set in res.get(source, {}).items():
            for name, by_metric in by_set.items():
                for metric, d in by_metric.items():
                    rows.append({"family": family, "arm": arm, "reference": d["reference"], "pair_set": name, "metric": metric,
                                 "difference": fmt_diff(d), "verdict": d["verdict"],
                                 "adjusted_verdict": d.get("adjusted_verdict", d["verdict"]),
                                 "p": None if d["p_value"] is None else round(d["p_value"], 4),
                                 "adjusted_p": None if d.get("adjusted_p") is None else round(d["adjusted_p"], 4),
                                 "mdd": round(d["mdd"], 4)})
    return rows


def write_report(run_dir: str | Path) -> dict:
    """Write report.json, report.md and report.html into `run_dir`; returns the report dict."""
    from recognition.report_html import figures, page

    run_dir = Path(run_dir)
    report = collect(run_dir)
    report["headline"] = headline(report)
    report["summary"] = summary_lines(report)
    report["tables"] = protocol_tables(report)
    report["comparisons_table"] = comparison_rows(report)
    pictures = figures(report)
    for name, data in pictures.items():
        (run_dir / f"{name}.png").write_bytes(data)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(markdown(report, sorted(pictures)))
    (run_dir / "report.html").write_text(page(report, pictures, run_dir))
    return report


def markdown(report: dict, figure_names: list[str]) -> str:
    out = [f"# faceaug report — {report['run_dir']}", "", f"Generated {report['generated']}.", "", "## Answer", ""]
    out += [f"- {line}" for line in report["summary"]] + [""]
    if report["headline"]:
        out += ["| arm | editor | pairs | Δ AUC vs no-edit control [95% CI] | verdict (Holm) | uncorrected | MDD | share of true edit's gain | Δ vs baseline |",
                "|---|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['arm']} | {r['editor']} | {r['pair_set']} | {r['difference']} | {r['adjusted_verdict']} | {r['verdict']} | "
                f"±{r['mdd']:.4f} | {r['positive_control_fraction']} | {r['vs_baseline']} |" for r in report["headline"]]
    for t in report["tables"]:
        info = t["info"]
        out += ["", f"## {t['pair_set']}", "", f"{info['description']}: {info['genuine']} genuine and {info['impostors']} impostor pairs"
                + (f", {info['identities']} identities" if info.get("identities") else "") + "."]
        if info.get("note"):
            out.append(f"**{info['note']}**")
        if t["rows"]:
            out += ["", "| " + " | ".join(t["columns"]) + " |", "|" + "---|" * len(t["columns"])]
            out += ["| " + " | ".join(row.get(c, "") for c in t["columns"]) + " |" for row in t["rows"]]
    out += ["", "## Every comparison", "", "| family | arm | reference | pairs | metric | difference [95% CI] | verdict | Holm | p | adj. p | MDD |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['family']} | {r['arm']} | {r['reference']} | {r['pair_set']} | {r['metric']} | {r['difference']} | {r['verdict']} | "
            f"{r['adjusted_verdict']} | {r['p']} | {r['adjusted_p']} | {r['mdd']} |" for r in report["comparisons_table"]]
    out += ["", "Figures: " + ", ".join(f"`{n}.png`" for n in figure_names) + " (embedded in report.html).", "", "## Editors", ""]
    for name, e in report["editors"].items():
        out.append(f"- {name}: {editor_line(e)}")
    if report.get("comparisons"):
        from editing.compare import comparison_markdown

        out += ["", "## Editors compared (`faceaug editors compare`)", ""]
        for attribute, summary in report["comparisons"].items():
            out += [comparison_markdown(summary), f"Grid: `compare/{attribute}/grid.png`.", ""]
    out += ["", "## Software", "", "```", json.dumps(report["software"], indent=2), "```", "", "## Config", "", "```json",
            json.dumps(report["config"], indent=2), "```", ""]
    return "\n".join(out)


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


def _rate(d: dict | None) -> str:
    if not d or d.get("success_rate") is None:
        return "n/a"
    lo, hi = d["success_ci95"]
    return f"{d['success_rate']:.1%} [{lo:.1%}, {hi:.1%}] of {d['images']}"
