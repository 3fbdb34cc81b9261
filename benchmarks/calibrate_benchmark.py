"""Choose the synthetic benchmark's difficulty from baseline-only runs (no augmented arm is trained).

For one benchmark setting (a profile plus overrides), this renders and ingests the data, trains the
baseline verifier with the profile's budget for the given seeds, and measures:

* the standard CelebA-format protocol (one target per test identity, the rest queries): AUC, EER;
* per edited attribute, the cross-attribute protocol (recognition/cross_attribute.py): AUC and
  accuracy at the EER threshold (1 - EER) on pairs whose images differ in the attribute and on pairs
  whose images agree, and the gap agree - differ with a 95% interval from the identity-cluster
  bootstrap (seeds averaged; with one seed the interval covers test sampling only);
* LFW 10-fold accuracy.

    python benchmarks/calibrate_benchmark.py --name hard-a --profile evidence \\
        --set data.synthetic.style.nuisance=2 --set data.synthetic.style.identity_spread=0.6

Writes data/calibration/<name>.json and prints a table. The run directory is data/calibration/<name>/
(finished work is reused). The decision and the numbers that drove it go in the profile file and
docs/verification.md before any augmented arm of the chosen setting is scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.attributes import EDITED_ATTRIBUTES  # noqa: E402
from pipeline.config import load_config  # noqa: E402


def measure(cfg, seeds: list[int], replicates: int) -> dict:
    from pipeline.ingest import prepare_data
    from recognition.bootstrap import AUC, EER, replicate_values
    from recognition.evaluation import arm_runs
    from recognition.experiment import train_arm
    from recognition.intervals import estimate

    t0 = time.perf_counter()
    cfg = cfg.model_copy(update={"verifier": cfg.verifier.model_copy(update={"seeds": tuple(seeds)}),
                                 "evaluation": cfg.evaluation.model_copy(update={"protocols": ("celeba", "lfw", "celeba-cross")})})
    prepare_data(cfg, progress=lambda m: None)
    for s in seeds:
        train_arm(cfg, "baseline", s, progress=lambda m: print(m, flush=True) if "step" in m and "/1000 " in m else None)
    train_seconds = time.perf_counter() - t0
    runs = arm_runs(cfg, "baseline")
    standard = runs["celeba"]
    out = {"config": {"synthetic": cfg.data.synthetic.model_dump(), "image_size": cfg.data.image_size,
                      "split": cfg.data.split, "verifier_steps": cfg.verifier.steps, "batch": cfg.verifier.batch_size},
           "seeds": seeds, "train_seconds": round(train_seconds),
           "test_identities": int(np.unique(standard[0].groups).size),
           "standard": {m: estimate(standard, m, n=replicates).as_dict() for m in ("auc", "eer")},
           "lfw_auc": estimate(runs["lfw"], "auc", n=replicates).as_dict(), "cross": {}}
    for attribute in EDITED_ATTRIBUTES:
        pair = {split: runs.get(f"celeba-cross/{attribute}/{split}") for split in ("differ", "agree")}
        result = {split: {"genuine": int(r[0].labels.sum()) if r else 0, "impostors": int((~r[0].labels).sum()) if r else 0}
                  for split, r in pair.items()}
        out["cross"][attribute] = result
        if not all(pair.values()):
            result["note"] = "too few pairs to read"
            continue
        clusters = np.unique(np.concatenate([np.unique(r.groups) for split in pair.values() for r in split]))
        for name, metric, sign in (("auc", AUC, 1.0), ("accuracy_at_eer", EER, -1.0)):
            full, reps = {}, {}
            for split in ("differ", "agree"):
                f, r = replicate_values(pair[split], metric.read, replicates, 0, clusters)
                full[split], reps[split] = sign * f + (1.0 if sign < 0 else 0.0), sign * r + (1.0 if sign < 0 else 0.0)
                result[split][name] = float(full[split].mean())
            gap_reps = reps["agree"].mean(axis=1) - reps["differ"].mean(axis=1)
            gap_reps = gap_reps[~np.isnan(gap_reps)]
            gap = float(full["agree"].mean() - full["differ"].mean())
            se = float(np.std(gap_reps, ddof=1))
            result[f"gap_{name}"] = {"gap": gap, "ci_low": gap - 1.96 * se, "ci_high": gap + 1.96 * se, "se": se}
    return out


def table(result: dict) -> str:
    st = result["standard"]
    lines = [f"standard CelebA-format protocol: AUC {st['auc']['mean']:.4f} [{st['auc']['ci_low']:.4f}, {st['auc']['ci_high']:.4f}], "
             f"EER {st['eer']['mean']:.4f}; LFW AUC {result['lfw_auc']['mean']:.4f}; "
             f"{result['test_identities']} test identities, seeds {result['seeds']}",
             "| attribute | differ: genuine / impostors | differ AUC / acc | agree AUC / acc | gap AUC [95% CI] | gap accuracy [95% CI] |",
             "|---|---|---|---|---|---|"]
    for a, r in result["cross"].items():
        d, g = r["differ"], r["agree"]
        if "note" in r:
            lines.append(f"| {a} | {d['genuine']} / {d['impostors']} | {r['note']} | | | |")
            continue
        ga, gc = r["gap_auc"], r["gap_accuracy_at_eer"]
        lines.append(f"| {a} | {d['genuine']} / {d['impostors']} | {d['auc']:.4f} / {d['accuracy_at_eer']:.4f} | "
                     f"{g['auc']:.4f} / {g['accuracy_at_eer']:.4f} | {ga['gap']:+.4f} [{ga['ci_low']:+.4f}, {ga['ci_high']:+.4f}] | "
                     f"{gc['gap']:+.4f} [{gc['ci_low']:+.4f}, {gc['ci_high']:+.4f}] |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--profile", default="evidence")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--replicates", type=int, default=500)
    args = parser.parse_args()
    out_dir = Path("data/calibration")
    cfg = load_config(args.profile, [f"output_dir={out_dir / args.name}", *args.overrides])
    result = measure(cfg, [int(s) for s in args.seeds.split(",")], args.replicates)
    result["overrides"] = args.overrides
    (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
