"""Choose one editor per attribute among finished runs, on the validation faces only (docs/editors.md, "The editors
of the next verification run"): each candidate's validated checkpoint is ranked by the criterion its own training
used to pick that checkpoint (`editing.selection.rank`). The test faces are never read.

    python scripts/choose_editor.py RUN_DIR... [--mask-target T] [--into DIR]

Prints, per attribute, every candidate with its validation figures and marks the one chosen. With --into, copies
each chosen editor directory to DIR/editors/ (with the first run's judge, DIR/judge) and writes DIR/choice.json,
so `faceaug augment`, `faceaug editors evaluate` and `faceaug editors quality` can use them as one run's editors.
Candidates must have been validated on the same faces (the same counts per direction); otherwise it is an error.
With --mask-target, the criterion has the mask tier (`editing.selection.rank`); a candidate validated before the
validator measured masks has no mask figure and counts as missing that target.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from editing.selection import rank
from recognition.report import markdown_table

COLUMNS = ["attribute", "run", "width", "checkpoint (iterations configured)", "weaker direction", "outside change",
           "error to the truth / no edit", "mask mass inside", ""]


def candidates(runs: list[Path], mask_target: float | None = None) -> dict[str, list[dict]]:
    """{attribute: [candidate]} from every `editors/*/selection.json` of the runs (single-attribute editors)."""
    found: dict[str, list[dict]] = {}
    for run in runs:
        paths = sorted((run / "editors").glob("*/selection.json"))
        if not paths:
            raise FileNotFoundError(f"{run}: no editors/*/selection.json (a run whose editors were validated)")
        for path in paths:
            selection = json.loads(path.read_text())
            meta = json.loads((path.parent / "editor.json").read_text())
            best = selection["best"]
            if len(best["attributes"]) != 1:
                raise ValueError(f"{path}: an editor of {len(best['attributes'])} attributes; only single-attribute editors are compared")
            (attribute,) = best["attributes"]
            faces = best["attributes"][attribute].get("faces")
            found.setdefault(attribute, []).append({
                "run": str(run), "directory": str(path.parent), "step": selection["best_step"],
                "iterations": meta.get("iterations"), "width": (meta.get("arch") or {}).get("conv_dim"),
                "weaker_direction": best["weaker_direction"], "outside_change": best["outside_change"],
                "counterfactual_ratio": best["counterfactual_ratio"], "mask_mass_inside": best.get("mask_mass_inside"),
                "faces": faces, "rank": rank(best, mask_target)})
    for attribute, group in found.items():
        faces = {json.dumps(c["faces"], sort_keys=True) for c in group}
        if len(faces) > 1:
            raise ValueError(f"{attribute}: candidates were validated on different faces ({', '.join(sorted(faces))}); "
                             "their validation figures cannot be compared")
    return found


def choose(found: dict[str, list[dict]]) -> dict[str, dict]:
    """The best candidate per attribute; a tie keeps the first run named."""
    return {a: max(group, key=lambda c: c["rank"]) for a, group in found.items()}


def main(argv: list[str]) -> int:
    options = {}
    for flag in ("--into", "--mask-target"):
        if flag in argv[:-1]:
            i = argv.index(flag)
            options[flag], argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if not argv or any(a.startswith("--") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    into = Path(options["--into"]) if "--into" in options else None
    try:
        mask_target = float(options["--mask-target"]) if "--mask-target" in options else None
        found = candidates([Path(r) for r in argv], mask_target)
    except (OSError, ValueError, KeyError) as e:
        print(f"choose_editor: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    chosen = choose(found)
    rows = []
    for attribute in sorted(found):
        for c in found[attribute]:
            ratio = "–" if c["counterfactual_ratio"] is None else f"{c['counterfactual_ratio']:.2f}"
            mask = "–" if c["mask_mass_inside"] is None else f"{c['mask_mass_inside']:.2f}"
            rows.append([attribute, c["run"], c["width"], f"{c['step']} ({c['iterations']})", f"{c['weaker_direction']:.3f}",
                         f"{c['outside_change']:.4f}", ratio, mask, "**chosen**" if c is chosen[attribute] else ""])
    print("\n".join(markdown_table(COLUMNS, rows)))
    if into is not None:
        (into / "editors").mkdir(parents=True, exist_ok=True)
        for c in chosen.values():
            target = into / "editors" / Path(c["directory"]).name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(c["directory"], target)
        judge = Path(argv[0]) / "judge"
        if judge.exists() and not (into / "judge").exists():
            shutil.copytree(judge, into / "judge")
        (into / "choice.json").write_text(json.dumps(
            {a: {k: v for k, v in c.items() if k != "rank"} for a, c in sorted(chosen.items())}, indent=2) + "\n")
        print(f"\nchosen editors copied to {into / 'editors'}; the record is {into / 'choice.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
