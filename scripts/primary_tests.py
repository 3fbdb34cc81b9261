"""The pre-registered primary tests of the evidence designs (docs/verification.md): for each attribute, the positive
control (aug-<a>@counterfactual) against the no-edit control (aug-<a>@identity) in AUC on the CelebA-format pairs
that differ in that attribute, Holm-adjusted over these tests only, beside the report's Holm over its whole family.

    python scripts/primary_tests.py data/runs/evidence-stress-1000/results.parquet [--metric tar@far=0.01]

The target: an interval excluding zero for >= 3 of the 4 attributes (in AUC, the default metric). Another metric
reads the same pair sets and arms, Holm over its own four tests (the stress run's secondary question). An attribute
whose two arms the run lacks, or whose metric the pairs cannot resolve, is listed as missing and is not in the family.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recognition.evaluation import CONTROL_EDITOR, POSITIVE_EDITOR
from recognition.report import markdown_table
from recognition.intervals import GAIN, LOSS, NONE, holm

TARGET = 3
HEADER = ["attribute", "Δ [95% interval]", "MDD", "p", "Holm over these tests", "the report's Holm (family)", "verdict"]


def primary_rows(table, metric: str = "auc") -> tuple[list[list[str]], int]:
    """The table's rows and how many attributes gain after Holm over the primary tests (a pandas DataFrame of a
    run's results.parquet in, cells as text out)."""
    differences = table[(table["kind"] == "difference") & (table["metric"] == metric)]
    attributes = sorted({p.split("/")[1] for p in table["pair_set"].dropna() if p.startswith("celeba-cross/")})
    found = {}
    for a in attributes:
        hit = differences[(differences["arm"] == f"aug-{a}@{POSITIVE_EDITOR}") & (differences["reference"] == f"aug-{a}@{CONTROL_EDITOR}")
                          & (differences["pair_set"] == f"celeba-cross/{a}/differ")]
        if len(hit) > 1:
            raise ValueError(f"{len(hit)} rows for the primary test of {a}; a results table has one")
        if len(hit) == 1 and hit.iloc[0]["p_value"] == hit.iloc[0]["p_value"]:  # NaN: not resolvable, no test
            found[a] = hit.iloc[0]
    adjusted = dict(zip(found, holm([float(r["p_value"]) for r in found.values()])))
    rows, gains = [], 0
    for a in attributes:
        if a not in found:
            rows.append([a, "missing (the run lacks one of the two arms, or the pair set is unreadable)"] + ["–"] * 5)
            continue
        r, p_adj = found[a], adjusted[a]
        better = (r["value"] > 0) == bool(r["higher_is_better"])
        verdict = (GAIN if better else LOSS) if p_adj < 0.05 else NONE
        gains += verdict == GAIN
        rows.append([a, f"{r['value']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", f"±{r['mdd']:.4f}",
                     f"{r['p_value']:.2g}", f"{p_adj:.2g}", f"{r['adjusted_p']:.2g} ({r['family']})", verdict])
    return rows, gains


def main(argv: list[str]) -> int:
    metric = "auc"
    if "--metric" in argv:
        i = argv.index("--metric")
        metric, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    import pandas as pd

    path = Path(argv[0])
    try:
        rows, gains = primary_rows(pd.read_parquet(path), metric)
    except (OSError, ValueError, KeyError) as e:
        print(f"{path}: not a readable results.parquet of a run with cross-attribute protocols ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    print("\n".join(markdown_table(HEADER, rows)))
    print(f"\n{metric}: positive control measurable (Holm over the {sum(r[3] != '–' for r in rows)} tests): "
          f"{gains} of {len(rows)} attributes" + (f"; target >= {TARGET}: {'met' if gains >= TARGET else 'not met'}" if metric == "auc" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
