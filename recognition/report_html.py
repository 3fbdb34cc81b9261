"""The report as one self-contained HTML page (images embedded, no network), and its figures: ROC curves per
protocol, a forest plot of the paired differences, and the editors' grids redrawn large enough to see the edit.

The grids are redrawn from the PNGs the editing stages already store (`editors/<name>/evaluation.png`: original |
edited | mask | |residual| | true region per face; `compare/<attribute>/grid.png`): every face cell is scaled up
with nearest-neighbour to >= 128 px, masks and residuals are shown in the 'magma' colour map, and where the run has
ground-truth edit regions (the synthetic benchmark) the true region is outlined on the face, the edit and the mask.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np

from recognition.report import (HEADLINE_COLUMNS, PRIMARY, editor_line, selection_line, headline_cells, headline_note, is_standard, pair_set_caption,
                                reuse_text)

esc = html.escape
CELL_INCHES, DPI = 1.4, 100  # 140 px per face cell
REGION_COLOUR = "#00e5ff"
VERDICT_COLOURS = {"gain": "#0a7d28", "loss": "#c0281b"}
INTERVAL = re.compile(r"^(±[\d.]+|[-+]?[\d.]+ \[[-+]?[\d.]+, [-+]?[\d.]+\])$")  # kept on one line


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, tight: bool = True) -> bytes:
    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", bbox_inches="tight" if tight else None)
    _plt().close(fig)
    return buf.getvalue()


def roc_figure(report: dict, pair_set: str) -> bytes:
    plt = _plt()
    res = report["results"]
    far = np.asarray(res["far_grid"])
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=DPI)
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
    ax.set_title(f"{pair_set}: ROC (mean over seeds, {res['confidence']:.0%} band)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def forest_figure(report: dict) -> bytes | None:
    """Each edited arm's difference from its no-edit control with its interval (filled), the same arm's difference from
    the baseline below it (hollow, grey), and the ± minimal detectable difference (blue ticks), on the headline pair sets."""
    rows = report["headline"]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.3), dpi=DPI)
    y = np.arange(len(rows))[::-1].astype(float)
    for yi, r in zip(y, rows):
        colour = VERDICT_COLOURS.get(r["adjusted_verdict"], "#555555")
        ax.plot([r["ci_low"], r["ci_high"]], [yi, yi], color=colour, lw=2.2)
        ax.plot([r["diff_mean"]], [yi], "o", color=colour)
        ax.plot([-r["mdd"], r["mdd"]], [yi, yi], "|", color="#6b6bd6", ms=11, mew=1.6)
        b = r.get("vs_baseline_diff")
        if b and b["value"] is not None:
            ax.plot([b["ci_low"], b["ci_high"]], [yi - 0.28, yi - 0.28], color="#999999", lw=1.2)
            ax.plot([b["value"]], [yi - 0.28], "o", mfc="white", mec="#999999", ms=5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['arm']} · {r['pair_set']}" for r in rows], fontsize=8)
    ax.set_ylim(-0.8, len(rows) - 0.4)
    ax.set_xlabel(f"Δ {PRIMARY.upper()} with its {report['results']['confidence']:.0%} interval", fontsize=9)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], color="#555555", marker="o", lw=2.2, label="vs the no-edit control"),
                       Line2D([], [], color="#999999", marker="o", mfc="white", lw=1.2, label="vs the baseline"),
                       Line2D([], [], color="#6b6bd6", marker="|", ls="none", ms=11, mew=1.6, label="± detectable difference")],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


# ---- editing grids --------------------------------------------------------------------------------------

def grid_cells(path: Path, cell: int, header: int = 0) -> np.ndarray | None:
    """The face cells of a stored grid PNG as (rows, columns, cell, cell, 3) uint8, or None if it does not split."""
    from PIL import Image

    try:
        img = np.asarray(Image.open(path).convert("RGB"))[header:]
    except OSError:
        return None
    h, w = img.shape[:2]
    if cell <= 0 or h == 0 or h % cell or w % cell:
        return None
    return img.reshape(h // cell, cell, w // cell, cell, 3).swapaxes(1, 2)


def _show(ax, image, cmap=None, region=None) -> object:
    im = ax.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest") if cmap else ax.imshow(image, interpolation="nearest")
    if region is not None and region.any():
        k = 8  # outline on pixel edges: contour the nearest-neighbour upscaled region
        up = np.kron(region.astype(float), np.ones((k, k)))
        coords = (np.arange(up.shape[0]) + 0.5) / k - 0.5
        ax.contour(coords, coords, up, levels=[0.5], colors=REGION_COLOUR, linewidths=1.2)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return im


def editor_grid_figure(path: Path, cell: int) -> bytes | None:
    """An editor's evaluation.png redrawn with the faces as columns: original, edited, attention mask (magma),
    |edited - original| (magma), the true region outlined where the run has one."""
    cells = grid_cells(path, cell)
    if cells is None or cells.shape[1] not in (4, 5):
        return None
    faces = cells.shape[0]
    region = cells[:, 4, :, :, 0] > 127 if cells.shape[1] == 5 else None
    rows = [("original", cells[:, 0], None), ("edited", cells[:, 1], None),
            ("attention\nmask", cells[:, 2, :, :, 0] / 255.0, "magma"), ("change\n|edited −\noriginal|", cells[:, 3, :, :, 0] / 255.0, "magma")]
    plt = _plt()
    width = faces * CELL_INCHES + 1.25 + 0.65  # row labels on the left, the colour bar on the right
    fig, axes = plt.subplots(len(rows), faces, figsize=(width, len(rows) * CELL_INCHES + 0.15), dpi=DPI, squeeze=False)
    fig.subplots_adjust(left=1.25 / width, right=1 - 0.65 / width, top=0.99, bottom=0.01, wspace=0.03, hspace=0.03)
    im = None
    for i, (label, images, cmap) in enumerate(rows):
        for j in range(faces):
            outline = region[j] if region is not None and i < 3 else None
            shown = _show(axes[i, j], images[j], cmap, outline)
            im = shown if cmap else im
        axes[i, 0].set_ylabel(label, fontsize=10, rotation=0, ha="right", va="center")
    top, bottom = axes[2, -1].get_position(), axes[-1, -1].get_position()  # beside the magma rows, not taking their width
    cax = fig.add_axes([bottom.x1 + 0.08 / width, bottom.y0, 0.12 / width, top.y1 - bottom.y0])
    fig.colorbar(im, cax=cax)
    return _png(fig, tight=False)


def compare_grid_figure(path: Path, cell: int, columns: list[str]) -> bytes | None:
    """`faceaug editors compare`'s grid.png redrawn: faces as rows, input | each editor's edit | its |residual| (magma)."""
    cells = grid_cells(path, cell, header=14)  # the column labels editing/compare.py's `_labelled` puts above the faces
    if cells is None or cells.shape[1] != len(columns):
        return None
    faces, n = cells.shape[:2]
    plt = _plt()
    fig, axes = plt.subplots(faces, n, figsize=(n * CELL_INCHES, faces * CELL_INCHES + 0.35), dpi=DPI, squeeze=False)
    fig.subplots_adjust(left=0.005, right=0.995, top=1 - 0.35 / (faces * CELL_INCHES + 0.35), bottom=0.005, wspace=0.03, hspace=0.03)
    for j, label in enumerate(columns):
        residual = label.startswith("|")
        for i in range(faces):
            _show(axes[i, j], cells[i, j, :, :, 0] / 255.0 if residual else cells[i, j], "magma" if residual else None)
        axes[0, j].set_title(label, fontsize=10)
    return _png(fig, tight=False)


def selection_figure(e: dict) -> bytes | None:
    """The validation scores over training (success adding and removing, per attribute), the chosen checkpoint marked."""
    sel = e.get("selection")
    curve = (sel or {}).get("curve") or []
    if len(curve) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    steps = [c["step"] for c in curve]
    for attribute in curve[0].get("attributes", {}):
        for direction, style in (("added", "-o"), ("removed", "--s")):
            values = [100 * (c["attributes"].get(attribute, {}).get(direction) or float("nan")) for c in curve]
            ax.plot(steps, values, style, ms=3, label=f"{attribute} {direction}")
    ax.axvline(sel["best_step"], color="k", lw=0.8, ls=":", label="chosen")
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation success (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def figures(report: dict) -> dict[str, bytes]:
    out = {f"roc_{name.replace('/', '_')}": roc_figure(report, name) for name in report["results"]["protocols"]
           if any(name in r["protocols"] for r in report["results"]["arms"].values())}
    forest = forest_figure(report)
    if forest is not None:
        out["forest"] = forest
    return out


# ---- the page -------------------------------------------------------------------------------------------

def _img(data: bytes, alt: str, cls: str = "") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(columns: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    """An HTML table; a cell whose text is an interval or a ± figure does not wrap (class 'n')."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, c in enumerate(row):
            cls = " ".join(x for x in ((classes[i][j] if classes else ""), "n" if INTERVAL.match(str(c)) else "") if x)
            cells.append((f"<td class='{cls}'>" if cls else "<td>") + f"{esc(str(c))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _inline_code(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def _verdict_class(verdict: str) -> str:
    return {"gain": "gain", "loss": "loss"}.get(verdict, "")


def _summary_item(block: dict) -> str:
    """One answer block: the lead, the answer in bold, one sub-item per pair set coloured by its verdict."""
    answer = f" <b>{esc(block['answer'])}</b>" if block.get("answer") else ""
    items = "".join(f"<li class='{_verdict_class(v)}'>{esc(item)}</li>" for item, v in zip(block.get("items", []), block.get("verdicts", [])))
    return f"<li>{esc(block['lead'])}{answer}" + (f"<ul>{items}</ul>" if items else "") + "</li>"


def _roc(pictures: dict[str, bytes], pair_set: str) -> str:
    pic = pictures.get(f"roc_{pair_set.replace('/', '_')}")
    return _img(pic, f"ROC, {pair_set}", "roc") if pic else ""


def _protocol_block(t: dict, pictures: dict[str, bytes], open_: bool, with_roc: bool = True) -> str:
    info = t["info"]
    note = f"<p class='note'>{esc(info['note'])}</p>" if info.get("note") else ""
    body = _table(t["columns"], [[row.get(c, "") for c in t["columns"]] for row in t["rows"]]) if t["rows"] else ""
    roc = _roc(pictures, t["pair_set"]) if with_roc else ""
    return (f"<details{' open' if open_ else ''}><summary><b>{esc(t['pair_set'])}</b> — {esc(pair_set_caption(t['info']))}"
            f"</summary>{note}<div class='pair'><div>{body}</div>{roc}</div></details>")


def _editors_html(report: dict, run_dir: Path) -> str:
    cell = int(((report.get("config") or {}).get("data") or {}).get("image_size") or 0)
    parts = []
    run_editor = ((report.get("config") or {}).get("editor") or {}).get("name", "")
    order = {run_editor: 0, "counterfactual": 2, "identity": 3}  # the run's editor first, the controls last
    for name, e in sorted(report["editors"].items(), key=lambda item: (order.get(item[0].split("-")[0], 1), item[0])):
        grid = run_dir / "editors" / name / "evaluation.png"
        pic = editor_grid_figure(grid, cell) if grid.exists() else None
        if pic is not None:
            image = _img(pic, f"{name}: faces, edits, masks", "grid")
        elif grid.exists():  # a grid this page cannot split: shown as stored, scaled up
            image = _img(grid.read_bytes(), f"{name} edits", "grid raw")
        else:
            image = ""
        text = f"<p>{esc(editor_line(e))}</p>"
        chosen, curve = selection_line(e), selection_figure(e)
        if chosen:
            text += f"<p class='cap'>{esc(chosen)}</p>" + (_img(curve, f"{name}: validation curve", "curve") if curve else "")
        if name.startswith("identity-"):  # the no-edit control: nothing to see, folded
            parts.append(f"<details><summary><b>{esc(name)}</b> (the no-edit control)</summary>{text}{image}</details>")
        else:
            role = " (the true edit: the positive control)" if name.startswith("counterfactual-") else ""
            parts.append(f"<h3>{esc(name)}{role}</h3>{text}{image}")
    if not parts:
        return "<p>No editors in this run.</p>"
    caption = ("<p class='cap'>Each column one held-out test face (first those without the attribute, edited to add it, then "
               "those with it, edited to remove it); rows: original, edited toward the flipped label, the editor's attention "
               "mask and |edited − original| (magma: black 0, yellow 1)" +
               (f"; <span style='color:{REGION_COLOUR};background:#333;padding:0 3px'>outline</span>: the true edit region "
                "of the synthetic benchmark" if (report.get("config") or {}).get("data", {}).get("source") == "synthetic" else "")
               + ".</p>")
    return caption + "".join(parts)


def page(report: dict, pictures: dict[str, bytes], run_dir: Path) -> str:
    res = report["results"]
    summary = "".join(_summary_item(b) for b in report["summary_blocks"])
    head_rows = [headline_cells(r) for r in report["headline"]]
    head_cls = [["", "", "", "", _verdict_class(r["adjusted_verdict"]), "", "", "", _verdict_class(r["vs_baseline_verdict"])]
                for r in report["headline"]]
    headline = _table(HEADLINE_COLUMNS, head_rows, head_cls) if head_rows else ""
    forest = _img(pictures["forest"], "forest plot of differences from the no-edit control", "forest") if "forest" in pictures else ""
    standard = [_protocol_block(t, pictures, True, with_roc=False) for t in report["tables"] if is_standard(t["pair_set"])]
    standard.append("<div class='pair'>" + "".join(_roc(pictures, t["pair_set"]) for t in report["tables"]
                                                    if is_standard(t["pair_set"])) + "</div>")
    crossing = [_protocol_block(t, pictures, False) for t in report["tables"] if not is_standard(t["pair_set"])]
    cross = (f"<details class='group'><summary><b>Pairs that cross an attribute</b> ({len(crossing)} pair sets: images that "
             f"differ in it, or agree)</summary>{''.join(crossing)}</details>") if crossing else ""
    comp_rows = [[r["family"], r["arm"], r["reference"], r["pair_set"], r["metric"], r["difference"], r["verdict"], r["adjusted_verdict"],
                  r["p"] if r["p"] is not None else "", r["adjusted_p"] if r["adjusted_p"] is not None else "", r["mdd"]]
                 for r in report["comparisons_table"]]
    comp_cls = [["", "", "", "", "", "", _verdict_class(r["verdict"]), _verdict_class(r["adjusted_verdict"]), "", "", ""]
                for r in report["comparisons_table"]]
    comparisons = _table(["family", "arm", "reference", "pairs", "metric", "difference [CI]", "verdict", "Holm", "p", "adj. p", "MDD"],
                         comp_rows, comp_cls)
    folded = "".join(f"<details><summary>{title}</summary><pre>{esc(text)}</pre></details>" for title, text in (
        ("Method", res.get("method", "")), ("Data", json.dumps(report["data_summary"], indent=2)),
        ("Timings", json.dumps(report["timings"], indent=2)), ("Software versions", json.dumps(report["software"], indent=2)),
        ("Config", json.dumps(report["config"], indent=2))))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceaug report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1240px;margin:1.2em auto;padding:0 1em;color:#222;line-height:1.35}}
h1{{font-size:1.5em;margin:.3em 0}} h2{{font-size:1.2em;margin-top:1.4em;border-bottom:1px solid #ddd}} h3{{font-size:1.05em}}
table{{border-collapse:collapse;font-size:12.5px;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
th{{background:#f3f3f3}} td.n{{white-space:nowrap}} .gain{{color:#0a7d28;font-weight:600}} .loss{{color:#c0281b;font-weight:600}}
.note{{color:#a60;font-size:12px}} .cap{{color:#555;font-size:12.5px}} img{{max-width:100%}} img.roc{{width:520px;flex:none}}
img.forest{{max-width:900px}} img.curve{{width:420px;display:block}} img.grid{{display:block;margin:.3em 0 1em}} img.raw{{image-rendering:pixelated;width:min(100%,720px)}}
details{{margin:.4em 0}} summary{{cursor:pointer}} details.group>details{{margin-left:1.2em}}
.pair{{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}}
.answer{{background:#f6f8fb;border-left:4px solid #4a6fa5;padding:.4em 1em .4em 1.6em;margin:.6em 0}} .answer li{{margin:.35em 0}}
.answer ul{{padding-left:1.2em}} .answer ul li{{margin:.1em 0;font-weight:normal}} .answer li.gain,.answer li.loss{{font-weight:600}}
pre{{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}} code{{background:#f3f3f3;padding:0 3px}}
</style></head><body>
<h1>Does attribute augmentation make the verifier more robust?</h1>
<p class="cap">Run <code>{esc(report['run_dir'])}</code>, generated {esc(report['generated'])}.</p>
<ul class="answer">{summary}</ul>
{headline}
<p class="cap">{esc(headline_note(report))} The forest plot: filled, each edit's difference from its no-edit control (green: gain, red: loss, grey: no
measurable difference; Holm); hollow, the same arm's difference from the baseline; blue ticks: ± the smallest difference
the run would have detected with {100 * res.get('power', 0.8):.0f}% power.</p>{forest}
<h2>Protocols</h2>
<p class="cap">Each cell: the mean over seeds [{res['confidence']:.0%} interval]; a FAR level marked "not resolvable" has too few
impostor pairs to be read. ROC: mean over seeds with its band.</p>
{''.join(standard)}{cross}
<details><summary><b>Every comparison</b> ({len(comp_rows)} paired differences; Holm within each family)</summary>{comparisons}</details>
<h2>Editors: quality and examples</h2>
{_editors_html(report, run_dir)}
{_comparisons_html(report, run_dir)}
<h2>Reuse the numbers</h2>
<p>{_inline_code(reuse_text(report))}</p>
{folded}
</body></html>
"""


def _comparisons_html(report: dict, run_dir: Path) -> str:
    """`faceaug editors compare` results: per attribute, every editor's table row and the side-by-side grid."""
    if not report.get("comparisons"):
        return ""
    from editing.compare import COMPARISON_COLUMNS, comparison_rows, comparison_title

    parts = ["<h2>Editors compared</h2><p class='cap'>Same held-out faces, same judge, same budget; each edit next to its "
             "|residual| in magma (like the paper's Figs. 4-7). Success is judged toward the flipped label.</p>"]
    for attribute, summary in report["comparisons"].items():
        grid = run_dir / "compare" / attribute / "grid.png"
        pic = compare_grid_figure(grid, int(summary.get("image_size") or 0), summary.get("grid_columns", [])) if grid.exists() else None
        image = _img(pic, f"{attribute}: editors side by side", "grid") if pic else \
            (_img(grid.read_bytes(), f"{attribute}: editors side by side", "grid raw") if grid.exists() else "")
        parts.append(f"<h3>{esc(comparison_title(summary))}</h3>{_table(COMPARISON_COLUMNS, comparison_rows(summary))}{image}")
    return "".join(parts)
