"""The run report: `faceaug report RUN_DIR` -> report.html (self-contained), report.md, report.json.

Contents: ROC curves on the CelebA-format test identities and on LFW (like the paper's Figs. 10
and 11: every arm, log-scaled FAR, 95% bootstrap bands); a table of every metric per arm and test
set with intervals and the paired difference from the baseline (called a gain or a loss only when
its interval excludes zero); editing examples per attribute (original | added | removed | masks,
like Fig. 8) with the editors' measured quality; the run's config, data summary, timings and
software versions. Every number in the HTML comes from report.json.
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from pipeline.layout import EDITOR_JSON, EVALUATION_JSON, IDENTITY_JSON, RunLayout


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def software_versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("faceaug", "torch", "torchvision", "timm", "numpy", "pyarrow", "prefect", "pydantic"):
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
        ev = _load(d / EVALUATION_JSON)
        meta = _load(d / EDITOR_JSON)
        editors[d.name] = {"evaluation": ev, "identity": _load(d / IDENTITY_JSON),
                           "editor": {k: meta.get(k) for k in ("editor", "attribute", "iterations", "checkpoint_id")} if meta else None}
    comparisons = {d.name: _load(d / "compare.json") for d in sorted((run_dir / "compare").glob("*")) if (d / "compare.json").exists()}
    timings = {}
    for arm, r in results["arms"].items():
        timings[arm] = [t.get("wall_s_this_session") if t else None for t in r.get("training", [])]
    return {"run_dir": str(run_dir), "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "config": _load(layout.config),
            "data_summary": _load(layout.data_summary), "results": results, "editors": editors,
            "comparisons": comparisons,
            "timings": {"verifier_training_seconds": timings, "stages": _load(layout.timings)},
            "software": software_versions()}


def _fmt(m: dict | None, digits: int = 4) -> str:
    if not m or m.get("mean") is None:
        return "n/a"
    return f"{m['mean']:.{digits}f} [{m['ci_low']:.{digits}f}, {m['ci_high']:.{digits}f}]"


def _fmt_diff(d: dict | None, digits: int = 4) -> str:
    if not d or d.get("diff_mean") is None:
        return "n/a"
    return f"{d['diff_mean']:+.{digits}f} [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}] {d['verdict']}"


def metric_rows(report: dict) -> list[dict]:
    """One row per arm x test set x metric, with the value, its interval and the difference from baseline."""
    res = report["results"]
    rows = []
    for arm, r in res["arms"].items():
        for test_set in ("celeba", "lfw"):
            for name, m in r[test_set]["metrics"].items():
                diff = res["differences"].get(arm, {}).get(test_set, {}).get(name)
                resolvable = r[test_set]["resolvable"]
                level = name.split("=")[1] if name.startswith("tar@far=") else None
                coarse = level is not None and not any(v for k, v in resolvable.items() if float(k) == float(level))
                rows.append({"arm": arm, "test_set": test_set, "metric": name, "value": _fmt(m), "difference": _fmt_diff(diff),
                             "verdict": diff["verdict"] if diff else "", "coarse": coarse})
        acc = r["lfw_10fold"]
        rows.append({"arm": arm, "test_set": "lfw", "metric": "10-fold accuracy (mean over seeds)",
                     "value": f"{acc['accuracy_mean']:.4f} (fold std per seed: {', '.join(f'{s:.4f}' for s in acc['accuracy_std_over_folds'])})",
                     "difference": "", "verdict": "", "coarse": False})
    return rows


def roc_figure(report: dict, test_set: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["results"]
    far = np.asarray(res["far_grid"])
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    for arm, r in res["arms"].items():
        roc = r[test_set]["roc"]
        tar = np.asarray(roc["tar_mean"], dtype=float)
        line, = ax.plot(far, tar, label=arm, lw=2 if arm == "baseline" else 1.4, color="black" if arm == "baseline" else None)
        ax.fill_between(far, np.asarray(roc["tar_low"], float), np.asarray(roc["tar_high"], float), color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlim(far[0], 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    title = "CelebA-format test identities" if test_set == "celeba" else "LFW (pairs.txt, pooled)"
    ax.set_title(f"Face verification on {title}\n(mean over seeds, 95% bootstrap band)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def write_report(run_dir: str | Path) -> dict:
    """Write report.json, report.md and report.html into `run_dir`; returns the report dict."""
    run_dir = Path(run_dir)
    report = collect(run_dir)
    report["table"] = metric_rows(report)
    figures = {t: roc_figure(report, t) for t in ("celeba", "lfw")}
    (run_dir / "roc_celeba.png").write_bytes(figures["celeba"])
    (run_dir / "roc_lfw.png").write_bytes(figures["lfw"])
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(_markdown(report))
    (run_dir / "report.html").write_text(_html(report, figures, run_dir))
    return report


def _budget(res: dict) -> str:
    if res["budget"] == "equal_steps":
        return f"equal compute: every arm trained for {res['steps']} optimiser steps with the same schedule"
    return f"equal epochs: every arm trained for {res['epochs']} passes over its own data (augmented arms take more steps)"


def multiplicity(results: dict) -> dict:
    """How many paired differences the report tests, how many would exclude zero by chance alone if no arm
    differed from the baseline (each interval is at `confidence`, uncorrected), and which ones do."""
    called = [f"{arm} {test_set} {metric} ({d['verdict']})"
              for arm, by_set in results["differences"].items() for test_set, by_metric in by_set.items()
              for metric, d in by_metric.items() if d["verdict"] in ("gain", "loss")]
    n = sum(len(by_metric) for by_set in results["differences"].values() for by_metric in by_set.values())
    return {"comparisons": n, "expected_by_chance": n * (1 - results["confidence"]), "called": called}


def _summary_lines(report: dict) -> list[str]:
    res = report["results"]
    lines = [f"Budget: {_budget(res)}. Seeds: {', '.join(map(str, res['seeds']))}. "
             f"Intervals: {res['confidence']:.0%} hierarchical bootstrap over identities (CelebA) or pairs (LFW) and seeds, {res['bootstrap']} replicates."]
    if len(res["seeds"]) < 2:
        lines.append("Caution: one seed per arm, so the intervals cover test-set sampling only, not training variance; "
                     "a 'gain' here can be one lucky training run. Use several seeds (the evidence profile has 3) before concluding.")
    for arm, d in res["differences"].items():
        for test_set in ("celeba", "lfw"):
            a = d[test_set]["auc"]
            lines.append(f"{arm} vs baseline on {'CelebA' if test_set == 'celeba' else 'LFW'}: AUC {_fmt_diff(a)}")
    m = multiplicity(res)
    if m["comparisons"]:
        lines.append(f"Multiple comparisons: {m['comparisons']} paired differences are tested, each interval at "
                     f"{res['confidence']:.0%} without correction, so about {m['expected_by_chance']:.1f} would exclude zero "
                     f"by chance alone if no arm differed from the baseline. {len(m['called'])} {'does' if len(m['called']) == 1 else 'do'}"
                     + (f": {'; '.join(m['called'])}." if m["called"] else "."))
    return lines


def _markdown(report: dict) -> str:
    out = [f"# faceaug report — {report['run_dir']}", "", f"Generated {report['generated']}.", ""]
    out += [f"- {line}" for line in _summary_lines(report)] + [""]
    out += ["## Verification metrics", "", "| arm | test set | metric | value [95% CI] | difference from baseline [95% CI] |", "| --- | --- | --- | --- | --- |"]
    for r in report["table"]:
        note = " (too few impostor pairs to read this FAR)" if r["coarse"] else ""
        out.append(f"| {r['arm']} | {r['test_set']} | {r['metric']} | {r['value']}{note} | {r['difference']} |")
    out += ["", "ROC curves: `roc_celeba.png`, `roc_lfw.png` (and embedded in report.html).", "", "## Editors", ""]
    for name, e in report["editors"].items():
        ev = e["evaluation"]
        if not ev:
            out.append(f"- {name}: not evaluated")
            continue
        out.append(f"- {name}: added {_rate(ev['added'])}, removed {_rate(ev['removed'])}; "
                   f"change outside region {ev['preservation'].get('mean_abs_change_outside_region', float('nan')):.4f}; "
                   f"mask mass inside region {ev.get('mask', {}).get('mass_inside_region', float('nan')):.3f}; "
                   f"judge accuracy {ev['judge_balanced_accuracy_on_real_test']:.3f}")
    if report.get("comparisons"):
        from editing.compare import comparison_markdown

        out += ["", "## Editors compared (`faceaug editors compare`)", ""]
        for attribute, summary in report["comparisons"].items():
            out += [comparison_markdown(summary), f"Grid: `compare/{attribute}/grid.png`.", ""]
    out += ["", "## Software", "", "```", json.dumps(report["software"], indent=2), "```", "", "## Config", "", "```json", json.dumps(report["config"], indent=2), "```", ""]
    return "\n".join(out)


def _rate(d: dict) -> str:
    if not d or d.get("success_rate") is None:
        return "n/a"
    lo, hi = d["success_ci95"]
    return f"{d['success_rate']:.1%} [{lo:.1%}, {hi:.1%}] of {d['images']}"


def _comparisons_html(report: dict, run_dir: Path) -> str:
    """`faceaug editors compare` results: per attribute, every editor's table row and the side-by-side grid."""
    if not report.get("comparisons"):
        return ""
    from editing.compare import COMPARISON_COLUMNS, comparison_rows, comparison_title

    esc = html.escape
    parts = ["<h2>Editors compared</h2><p class='cap'>Same held-out faces, same judge, same budget; each edit next to its "
             "|residual| (like the paper's Figs. 4-7). Success is judged toward the flipped label.</p>"]
    for attribute, summary in report["comparisons"].items():
        head = "".join(f"<th>{esc(c)}</th>" for c in COMPARISON_COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in comparison_rows(summary))
        grid = run_dir / "compare" / attribute / "grid.png"
        pic = _img(grid.read_bytes(), f"{attribute}: editors side by side") if grid.exists() else ""
        parts.append(f"<h3>{esc(comparison_title(summary))}</h3><table><tr>{head}</tr>{body}</table>{pic}")
    return "".join(parts)


def _html(report: dict, figures: dict, run_dir: Path) -> str:
    esc = html.escape
    rows = []
    for r in report["table"]:
        cls = {"gain": "gain", "loss": "loss"}.get(r["verdict"], "")
        note = ' <span class="note">too few impostor pairs to read this FAR</span>' if r["coarse"] else ""
        rows.append(f"<tr><td>{esc(r['arm'])}</td><td>{esc(r['test_set'])}</td><td>{esc(r['metric'])}</td>"
                    f"<td>{esc(r['value'])}{note}</td><td class='{cls}'>{esc(r['difference'])}</td></tr>")
    editors = []
    for name, e in report["editors"].items():
        ev = e["evaluation"]
        grid = run_dir / "editors" / name / "evaluation.png"
        pic = _img(grid.read_bytes(), f"{name} edits") if grid.exists() else ""
        if ev:
            stats = (f"added {_rate(ev['added'])}; removed {_rate(ev['removed'])}; change outside the true region "
                     f"{ev['preservation'].get('mean_abs_change_outside_region', float('nan')):.4f}, inside "
                     f"{ev['preservation'].get('mean_abs_change_inside_region', float('nan')):.4f}; mask mass inside region "
                     f"{ev.get('mask', {}).get('mass_inside_region', float('nan')):.3f}, IoU@{ev.get('mask', {}).get('threshold', 0.5)} "
                     f"{ev.get('mask', {}).get('iou_at_threshold', float('nan')):.3f}; judge balanced accuracy on real test images "
                     f"{ev['judge_balanced_accuracy_on_real_test']:.3f}")
        else:
            stats = "not evaluated"
        editors.append(f"<h3>{esc(name)}</h3><p>{esc(stats)}</p><p class='cap'>columns: original | edited toward the flipped label | "
                       f"attention mask | |residual| | true region</p>{pic}")
    summary = "".join(f"<li>{esc(line)}</li>" for line in _summary_lines(report))
    compared = _comparisons_html(report, run_dir)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceaug report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
th{{background:#f3f3f3}} .gain{{color:#0a0;font-weight:600}} .loss{{color:#c00;font-weight:600}}
.note{{color:#a60;font-size:11px}} .cap{{color:#666;font-size:12px}} img{{max-width:100%}} pre{{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}}
.figs{{display:flex;gap:1em;flex-wrap:wrap}}
</style></head><body>
<h1>faceaug report</h1>
<p>Run <code>{esc(report['run_dir'])}</code>, generated {esc(report['generated'])}.</p>
<ul>{summary}</ul>
<h2>ROC curves</h2>
<div class="figs">{_img(figures['celeba'], 'ROC on CelebA-format test identities')}{_img(figures['lfw'], 'ROC on LFW')}</div>
<h2>Metrics</h2>
<p>A difference is called a gain or a loss only when its 95% interval excludes zero; otherwise "no measurable difference".</p>
<table><tr><th>arm</th><th>test set</th><th>metric</th><th>value [95% CI]</th><th>difference from baseline [95% CI]</th></tr>
{''.join(rows)}</table>
<h2>Editing examples and editor quality</h2>
{''.join(editors) or '<p>No editors in this run.</p>'}
{compared}
<h2>Data</h2><pre>{esc(json.dumps(report['data_summary'], indent=2))}</pre>
<h2>Timings</h2><pre>{esc(json.dumps(report['timings'], indent=2))}</pre>
<h2>Software</h2><pre>{esc(json.dumps(report['software'], indent=2))}</pre>
<h2>Config</h2><pre>{esc(json.dumps(report['config'], indent=2))}</pre>
</body></html>
"""
