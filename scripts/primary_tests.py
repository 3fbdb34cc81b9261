"""The pre-registered primary tests of the evidence designs (docs/verification.md): for each attribute, the positive
control (aug-<a>@counterfactual) against the no-edit control (aug-<a>@identity) in AUC on the CelebA-format pairs
that differ in that attribute, Holm-adjusted over these tests only, beside the report's Holm over its whole family.

    python scripts/primary_tests.py data/runs/evidence-stress-1000/results.parquet [--metric tar@far=0.01] [--editor sagan]

The target: an interval excluding zero for >= 3 of the 4 attributes (in AUC, the default metric). Another metric
reads the same pair sets and arms, Holm over its own four tests (the stress run's secondary question). An attribute
whose two arms the run lacks, or whose metric the pairs cannot resolve, is listed as missing and is not in the family.
`--editor NAME` reads that editor's arms (aug-<a>, made by NAME) against the same controls instead, Holm over their own
four tests: the stress run's question whether SaGAN's edits carry the benefit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recognition.evaluation import POSITIVE_EDITOR
from recognition.intervals import GAIN
from recognition.report import markdown_table, positive_control_tests

TARGET = 3
HEADER = ["attribute", "Δ [95% interval]", "MDD", "p", "Holm over these tests", "the report's Holm (family)", "verdict"]


def primary_rows(table, metric: str = "auc", editor: str = POSITIVE_EDITOR) -> tuple[list[list[str]], int]:
    """The table's rows and how many attributes gain after Holm over the primary tests (a pandas DataFrame of a
    run's results.parquet in, cells as text out); the family is `recognition.report.positive_control_tests`."""
    attributes = sorted({p.split("/")[1] for p in table["pair_set"].dropna() if p.startswith("celeba-cross/")})
    found = {r["attribute"]: r for r in positive_control_tests(table, metric, editor)}
    rows = []
    for a in attributes:
        if a not in found:
            rows.append([a, "missing (the run lacks one of the two arms, or the pair set is unreadable)"] + ["–"] * 5)
            continue
        r = found[a]
        rows.append([a, f"{r['value']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", f"±{r['mdd']:.4f}",
                     f"{r['p_value']:.2g}", f"{r['family_p']:.2g}", f"{r['adjusted_p']:.2g} ({r['family']})", r["family_verdict"]])
    return rows, sum(r["family_verdict"] == GAIN for r in found.values())


def main(argv: list[str]) -> int:
    options = {"--metric": "auc", "--editor": POSITIVE_EDITOR}
    for flag in options:
        if flag in argv[:-1]:
            i = argv.index(flag)
            options[flag], argv = argv[i + 1], argv[:i] + argv[i + 2:]
    metric, editor = options.values()
    if len(argv) != 1 or argv[0].startswith("--"):
        print(__doc__, file=sys.stderr)
        return 2
    import pandas as pd

    path = Path(argv[0])
    try:
        rows, gains = primary_rows(pd.read_parquet(path), metric, editor)
    except (OSError, ValueError, KeyError) as e:
        print(f"{path}: not a readable results.parquet of a run with cross-attribute protocols ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    print("\n".join(markdown_table(HEADER, rows)))
    what = "positive control" if editor == POSITIVE_EDITOR else f"{editor} arm against the no-edit control"
    print(f"\n{metric}: {what} gains measurably (Holm over the {sum(r[3] != '–' for r in rows)} tests): "
          f"{gains} of {len(rows)} attributes" + (f"; target >= {TARGET}: {'met' if gains >= TARGET else 'not met'}" if metric == "auc" and editor == POSITIVE_EDITOR else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
