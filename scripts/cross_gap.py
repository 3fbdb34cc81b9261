"""The gap attribute augmentation is meant to close, per attribute and arm: AUC on the CelebA-format pairs that
agree in the attribute minus the pairs that differ in it (means over seeds, from a run's results.json).

    python scripts/cross_gap.py data/runs/evidence-1000/results.json

Columns appear for the arms the run has: baseline, the no-edit control (aug-<a>@identity), the true edit
(aug-<a>@counterfactual), the configured editor's arm (aug-<a>), and aug-all with its control. Each cell is
"gap (differ vs agree)". The intervals of each AUC are in the run's report; this table reads only the means.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recognition.evaluation import CONTROL_EDITOR, POSITIVE_EDITOR
from recognition.report import markdown_table

COLUMNS = [("baseline", "baseline"), ("no-edit control", f"aug-{{a}}@{CONTROL_EDITOR}"),
           ("true edit", f"aug-{{a}}@{POSITIVE_EDITOR}"), ("edited (aug-<a>)", "aug-{a}"),
           (f"aug-all@{CONTROL_EDITOR}", f"aug-all@{CONTROL_EDITOR}"), ("aug-all", "aug-all")]


def gap_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    arms = results["arms"]
    attributes = sorted({name.split("/")[1] for name in results["protocols"] if name.startswith("celeba-cross/")})

    def auc(arm: str, pair_set: str) -> float | None:
        entry = arms.get(arm, {}).get("protocols", {}).get(pair_set)
        return entry["metrics"]["auc"]["mean"] if entry else None

    columns = [(title, arm) for title, arm in COLUMNS if any(arm.format(a=a) in arms for a in attributes)]
    rows = []
    for a in attributes:
        cells = [a]
        for _, arm in columns:
            differ, agree = auc(arm.format(a=a), f"celeba-cross/{a}/differ"), auc(arm.format(a=a), f"celeba-cross/{a}/agree")
            cells.append("–" if differ is None or agree is None else f"{agree - differ:.4f} ({differ:.4f} vs {agree:.4f})")
        rows.append(cells)
    return ["attribute"] + [title for title, _ in columns], rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        results = json.loads(path.read_text())
        header, rows = gap_rows(results)
    except (OSError, ValueError, KeyError) as e:
        print(f"{path}: not a readable results.json of a run with cross-attribute protocols ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    print("\n".join(markdown_table(header, rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
