"""An editor's share of the true edit's gain, (E - C) / (P - C), on each attribute's CelebA-format crossing pairs in
AUC, defined where the positive control gains in the pre-registered family of four (`scripts/primary_tests.py`), not
only where it survives the report's Holm over every comparison (the report's gate, which leaves the share undefined
for more attributes). Same arithmetic as the report (`recognition.intervals.fraction_from`, delta-method interval over
test identities and seeds), same bootstrap (the run's replicates and seed), read from the cached test embeddings.

    python scripts/share_of_true_edit.py --profile evidence --set ...

The `--set`s are the evaluated run's (output_dir, verifier.arms, verifier.seeds, evaluation.*); its `aug-<a>` arms
are read (made by the run's editor, `editor.name`).
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipeline.config import load_config
from pipeline.layout import RunLayout
from recognition.bootstrap import cluster_index, replicate_values, resolve_metric
from recognition.evaluation import arm_runs, control_of, positive_of
from recognition.intervals import fraction_from
from recognition.report import markdown_table, positive_control_tests
from recognition.results import PARQUET


def auc_values(cfg, arm: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(AUC per seed, AUC per bootstrap replicate and seed) of one arm on one pair set, as evaluate_run reads them."""
    auc = resolve_metric("auc")
    runs = arm_runs(cfg, arm)[name]
    full, reps = replicate_values(runs, lambda far, tar, thr: np.array([auc.read(far, tar, thr)]), cfg.evaluation.bootstrap,
                                  cfg.seed, cluster_index([r.groups for r in runs]))
    return full[:, 0], reps[:, :, 0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="evidence")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    a = p.parse_args(argv)
    cfg = load_config(a.profile, a.overrides)
    family = {r["attribute"]: r for r in positive_control_tests(pd.read_parquet(RunLayout(cfg).root / PARQUET))}
    rows = []
    for attribute, test in family.items():
        arm = f"aug-{attribute}"
        if arm not in cfg.verifier.arms:
            continue
        name = f"celeba-cross/{attribute}/differ"
        e, c, pos = (auc_values(cfg, x, name) for x in (arm, control_of(arm, cfg), positive_of(arm, cfg)))
        f = fraction_from("auc", e, c, pos, SimpleNamespace(verdict=test["family_verdict"]), cfg.evaluation.confidence)
        share = f.note if f.fraction is None else f"{100 * f.fraction:.0f}% [{100 * f.ci_low:.0f}, {100 * f.ci_high:.0f}]"
        rows.append([attribute, f"{test['value']:+.4f} ({test['family_verdict']})", share])
    print("\n".join(markdown_table(["attribute", "true edit vs control (family of four)", f"{cfg.editor.name}'s share of its gain"], rows)))


if __name__ == "__main__":
    main()
