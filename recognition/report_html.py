"""The report as one self-contained HTML page (images embedded, no network), and its figures:
ROC curves per protocol and a forest plot of the differences from the no-edit control."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from recognition.report import PRIMARY, editor_line

esc = html.escape


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    _plt().close(fig)
    return buf.getvalue()


def roc_figure(report: dict, pair_set: str) -> bytes:
    plt = _plt()
    res = report["results"]
    far = np.asarray(res["far_grid"])
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=100)
    for arm, r in res["arms"].items():
        roc = r["protocols"].get(pair_set, {}).get("roc")
        if roc is None:
            continue
        tar = np.asarray(roc["tar_mean"], dtype=float)
        line, = ax.plot(far, tar, label=arm, lw=2 if arm == "baseline" else 1.3, color="black" if arm == "baseline" else None)
        ax.fill_between(far, np.asarray(roc["tar_low"], float), np.asarray(roc["tar_high"], float), color=line.get_color(), alpha=0.12)
    ax.set_xscale("log")
    ax.set_xlim(far[0], 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(f"{pair_set}\n(mean over seeds, {res['confidence']:.0%} band)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def forest_figure(report: dict) -> bytes | None:
    """Each edited arm's difference from its no-edit control, with its interval, on the headline pair sets."""
    rows = report["headline"]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.2), dpi=100)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        colour = {"gain": "#0a7d28", "loss": "#c0281b"}.get(r["adjusted_verdict"], "#555555")
        ax.plot([r["ci_low"], r["ci_high"]], [yi, yi], color=colour, lw=2)
        ax.plot([r["diff_mean"]], [yi], "o", color=colour)
        ax.plot([-r["mdd"], r["mdd"]], [yi, yi], "|", color="#9999cc", ms=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['arm']} · {r['pair_set']}" for r in rows], fontsize=7)
    ax.set_xlabel(f"Δ {PRIMARY.upper()} vs the no-edit control ({report['results']['confidence']:.0%} interval; "
                  "blue ticks: ± minimal detectable difference)", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def figures(report: dict) -> dict[str, bytes]:
    out = {f"roc_{name.replace('/', '_')}": roc_figure(report, name) for name in report["results"]["protocols"]
           if any(name in r["protocols"] for r in report["results"]["arms"].values())}
    forest = forest_figure(report)
    if forest is not None:
        out["forest"] = forest
    return out


def _img(data: bytes, alt: str, cls: str = "") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(columns: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = "".join((f"<td class='{classes[i][j]}'>" if classes and classes[i][j] else "<td>") + f"{esc(str(c))}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _verdict_class(verdict: str) -> str:
    return {"gain": "gain", "loss": "loss"}.get(verdict, "")


def page(report: dict, pictures: dict[str, bytes], run_dir: Path) -> str:
    res = report["results"]
    summary = "".join(f"<li>{esc(line)}</li>" for line in report["summary"])
    head_rows = [[r["arm"], r["editor"], r["pair_set"], r["difference"], r["adjusted_verdict"], r["verdict"], f"±{r['mdd']:.4f}",
                  r["positive_control_fraction"], f"{r['vs_baseline']} ({r['vs_baseline_verdict']})"] for r in report["headline"]]
    head_cls = [["", "", "", "", _verdict_class(r["adjusted_verdict"]), _verdict_class(r["verdict"]), "", "", ""] for r in report["headline"]]
    headline = _table(["arm", "editor", "pairs", f"Δ {PRIMARY.upper()} vs no-edit control", "verdict (Holm)", "uncorrected",
                       "detectable (80%)", "share of true edit's gain", "Δ vs baseline"], head_rows, head_cls) if head_rows else ""
    forest = _img(pictures["forest"], "forest plot of differences from the no-edit control") if "forest" in pictures else ""
    tables = []
    for t in report["tables"]:
        info = t["info"]
        counts = f"{info['genuine']} genuine / {info['impostors']} impostor pairs" + (f", {info['identities']} identities" if info.get("identities") else "")
        note = f"<p class='note'>{esc(info['note'])}</p>" if info.get("note") else ""
        body = _table(t["columns"], [[row.get(c, "") for c in t["columns"]] for row in t["rows"]]) if t["rows"] else ""
        pic = pictures.get(f"roc_{t['pair_set'].replace('/', '_')}")
        tables.append(f"<details{' open' if t['pair_set'] in ('celeba', 'lfw') else ''}><summary><b>{esc(t['pair_set'])}</b> — "
                      f"{esc(info['description'])} ({esc(counts)})</summary>{note}{body}{_img(pic, t['pair_set'], 'roc') if pic else ''}</details>")
    comp_rows = [[r["family"], r["arm"], r["reference"], r["pair_set"], r["metric"], r["difference"], r["verdict"], r["adjusted_verdict"],
                  r["p"] if r["p"] is not None else "", r["adjusted_p"] if r["adjusted_p"] is not None else "", r["mdd"]]
                 for r in report["comparisons_table"]]
    comp_cls = [["", "", "", "", "", "", _verdict_class(r["verdict"]), _verdict_class(r["adjusted_verdict"]), "", "", ""]
                for r in report["comparisons_table"]]
    comparisons = _table(["family", "arm", "reference", "pairs", "metric", "difference [CI]", "verdict", "Holm", "p", "adj. p", "MDD"],
                         comp_rows, comp_cls)
    editors = []
    for name, e in report["editors"].items():
        grid = run_dir / "editors" / name / "evaluation.png"
        pic = _img(grid.read_bytes(), f"{name} edits", "grid") if grid.exists() else ""
        editors.append(f"<h3>{esc(name)}</h3><p>{esc(editor_line(e))}</p><p class='cap'>columns: original | edited toward the "
                       f"flipped label | mask | |residual| | true region</p>{pic}")
    compared = _comparisons_html(report, run_dir)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceaug report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:12.5px;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
th{{background:#f3f3f3}} .gain{{color:#0a7d28;font-weight:600}} .loss{{color:#c0281b;font-weight:600}}
.note{{color:#a60;font-size:12px}} .cap{{color:#666;font-size:12px}} img{{max-width:100%}} img.roc{{max-width:640px}}
img.grid{{image-rendering:pixelated;width:min(100%,720px)}} details{{margin:.4em 0}} summary{{cursor:pointer}}
pre{{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}} ul.answer li{{margin:.25em 0}}
</style></head><body>
<h1>Does attribute augmentation make the verifier more robust?</h1>
<p>Run <code>{esc(report['run_dir'])}</code>, generated {esc(report['generated'])}.</p>
<ul class="answer">{summary}</ul>
{headline}{forest}
<h2>Protocols</h2>
{''.join(tables)}
<details><summary><b>Every comparison</b> ({len(comp_rows)} paired differences; Holm within each family)</summary>{comparisons}</details>
<h2>Editors: quality and examples</h2>
{''.join(editors) or '<p>No editors in this run.</p>'}
{compared}
<details><summary>Data</summary><pre>{esc(json.dumps(report['data_summary'], indent=2))}</pre></details>
<details><summary>Timings</summary><pre>{esc(json.dumps(report['timings'], indent=2))}</pre></details>
<details><summary>Software</summary><pre>{esc(json.dumps(report['software'], indent=2))}</pre></details>
<details><summary>Config</summary><pre>{esc(json.dumps(report['config'], indent=2))}</pre></details>
<p class="cap">Method: {esc(res['method'])}.</p>
</body></html>
"""


def _comparisons_html(report: dict, run_dir: Path) -> str:
    """`faceaug editors compare` results: per attribute, every editor's table row and the side-by-side grid."""
    if not report.get("comparisons"):
        return ""
    from editing.compare import COMPARISON_COLUMNS, comparison_rows, comparison_title

    parts = ["<h2>Editors compared</h2><p class='cap'>Same held-out faces, same judge, same budget; each edit next to its "
             "|residual| (like the paper's Figs. 4-7). Success is judged toward the flipped label.</p>"]
    for attribute, summary in report["comparisons"].items():
        grid = run_dir / "compare" / attribute / "grid.png"
        pic = _img(grid.read_bytes(), f"{attribute}: editors side by side", "grid") if grid.exists() else ""
        parts.append(f"<h3>{esc(comparison_title(summary))}</h3>{_table(COMPARISON_COLUMNS, comparison_rows(summary))}{pic}")
    return "".join(parts)
