"""SaGAN ablation: the same editor trained under different loss options and training seeds, scored alike on
the validation faces (never the test faces), so a choice of options can be made without touching the test set.

    python benchmarks/sagan_ablation.py --profile evidence --attribute eyeglasses --attribute no_beard \\
        --iterations 1500 --seeds 0,1 --variant base --variant 'detach_tv editor.sagan.identity_trains_mask=false editor.sagan.mask_tv=5'

Each `--variant 'NAME [key=value ...]'` is the profile plus those overrides (and `--set` ones for all),
trained for `--iterations` with each of `--seeds` on the profile's run originals (which must exist:
`faceaug data prepare --profile ...`) into `<run>/ablation/<attribute>/<NAME>/seed-<s>/`, two trainings
at a time with one thread each. Every training is scored on the run's validation faces (`editing.selection`:
success both ways by the independent judge, change outside the true region, error to the true
counterfactual) at its last iteration and, with `--select-every`, at its best validated checkpoint; and
SaGAN's own discriminator is asked about its edits (`editing.sagan_probe`). A finished training is reused, a
partial one resumed. Writes `<run>/ablation/ablation.json` and `ablation.md` (per variant: the mean over
seeds and every seed's value, so the spread shows) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shlex
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from editing.sagan import SaganEditor
from editing.sagan_probe import probe_sagan
from editing.selection import Validator
from flows.run import in_worker
from pipeline.config import load_config
from pipeline.layout import RunLayout

METRICS = (("added", "added"), ("removed", "removed"), ("outside", "outside_change"), ("truth", "counterfactual_ratio"))


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, *overrides = shlex.split(text)
    bad = [o for o in overrides if "=" not in o]
    if bad or "/" in name:
        raise SystemExit(f"--variant {text!r}: expected 'NAME key=value ...'")
    return name, overrides


def _cell(values: list[float | None], pct: bool) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    scale = 100 if pct else 1
    each = " / ".join(f"{scale * v:.0f}" if pct else f"{v:.3f}" for v in vals)
    mean = scale * float(np.mean(vals))
    return f"{mean:.1f}% ({each})" if pct else f"{mean:.4f} ({each})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="evidence")
    ap.add_argument("--attribute", action="append", help="attribute(s) (repeatable; default eyeglasses)")
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1", help="training seeds per variant (an ablation claim needs >= 2)")
    ap.add_argument("--select-every", type=int, default=250, help="also keep the best validated checkpoint (0: last only)")
    ap.add_argument("--variant", action="append", required=True, help="'NAME key=value ...' (repeatable)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every variant")
    ap.add_argument("--skip", action="append", default=[], metavar="ATTRIBUTE/VARIANT",
                    help="leave out one variant for one attribute (repeatable; the table says which were left out)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    attributes = args.attribute or ["eyeglasses"]
    seeds = [int(s) for s in args.seeds.split(",")]
    base = load_config(args.profile, args.overrides)
    run = Path(base.output_dir)
    out = run / "ablation"
    variants = [parse_variant(v) for v in args.variant]
    configs = {}
    for attribute in attributes:
        for name, overrides in variants:
            if f"{attribute}/{name}" in args.skip:
                continue
            for seed in seeds:
                configs[(attribute, name, seed)] = load_config(args.profile, [
                    *args.overrides, *overrides, f"output_dir={out / attribute / name / f'seed-{seed}'}",
                    f"data.shard_root={run / 'shards'}", f"editor.iterations={args.iterations}", f"seed={seed}",
                    f"editor.attributes=[{attribute}]", "editor.threads=1", f"editor.select_every={args.select_every}"])
    # the run's judge and validation faces serve every variant (train the judge once, before the workers start)
    validator = Validator.for_run(base.model_copy(update={"editor": base.editor.model_copy(update={"valid_images": 1000})}))
    for cfg in configs.values():  # every variant reads the run's judge, not one of its own
        judge_dir = RunLayout(cfg).judge.parent
        if not judge_dir.exists():
            judge_dir.parent.mkdir(parents=True, exist_ok=True)
            judge_dir.symlink_to(RunLayout(base).judge.parent.resolve())

    with ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {k: pool.submit(in_worker, "train editors", cfg.model_dump_json(), {"editor": "sagan", "unit": k[0]})
                   for k, cfg in configs.items()}
        for k, fut in futures.items():
            print(f"{k}: trained in {fut.result()}", flush=True)

    rows: dict = {}
    for (attribute, name, seed), cfg in configs.items():
        directory = RunLayout(cfg).editor_dir(attribute)
        selected = json.loads((directory / "editor.json").read_text()).get("selection", {})
        last = validator.score_all(_last_editor(directory), [attribute])
        best = validator.score_all(SaganEditor.load(directory), [attribute]) if selected else {}  # editor.pt: the chosen one
        probe, _ = probe_sagan(directory, attribute, validator.faces(attribute), validator.judge)
        own = probe["variants"]["own mask"]["discriminator"]
        rows.setdefault(attribute, {}).setdefault(name, {})[seed] = {
            "last": last["attributes"][attribute], "best": (best.get("attributes") or {}).get(attribute), "best_step": selected.get("best_step"),
            "discriminator_on_own_edits": {d: own[d]["success_rate"] for d in ("added", "removed")},
            "mask_mean_inside_region": probe["mask_inside_region"]["mean"],
        }
    lines = [f"SaGAN ablation, {args.iterations} iterations, seeds {seeds}, profile {args.profile}, scored on "
             f"{validator.n} validation faces per attribute, half with it where there are enough (never the test faces); judge balanced accuracy on real test "
             f"images: {', '.join(f'{a} {validator.judge.test_accuracy.get(a):.3f}' for a in attributes)}", "",
             "Each cell: mean over seeds (every seed's value). 'best' = the best validated checkpoint (every "
             f"{args.select_every} iterations); truth = error to the true counterfactual inside the region / no edit's.", ""]
    for attribute, by_variant in rows.items():
        lines += [f"### {attribute}", "", "| variant | overrides | added (last) | removed (last) | outside (last) | truth (last) "
                  "| added (best) | removed (best) | outside (best) | truth (best) | best step | D head on own edits: added / removed |",
                  "|" + "---|" * 12]
        for name, overrides in variants:
            if name not in by_variant:
                lines.append(f"| {name} | left out for {attribute} (--skip) |" + " |" * 11)
                continue
            per_seed = by_variant[name]
            cells = []
            for which in ("last", "best"):
                for label, key in METRICS:
                    cells.append(_cell([(s[which] or {}).get(key) for s in per_seed.values()], label in ("added", "removed")))
            d = [s["discriminator_on_own_edits"] for s in per_seed.values()]
            lines.append(f"| {name} | {' '.join(overrides) or '(profile)'} | " + " | ".join(cells) +
                         f" | {' / '.join(str(s['best_step']) for s in per_seed.values())} | "
                         f"{_cell([x['added'] for x in d], True)} / {_cell([x['removed'] for x in d], True)} |")
        lines.append("")
    (out / "ablation.json").write_text(json.dumps({"profile": args.profile, "iterations": args.iterations, "seeds": seeds,
                                                   "variants": dict(variants), "skipped": args.skip, "rows": rows}, indent=2) + "\n")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _last_editor(directory: Path):
    """The editor at its last iteration (the checkpoint's generator), whatever selection chose for editor.pt."""
    import torch

    from editing.gan import CHECKPOINT
    from editing.sagan import Generator, SaganEditor

    state = torch.load(directory / CHECKPOINT, map_location="cpu", weights_only=True)
    g = Generator(**state["arch"])
    g.load_state_dict(state["generator"])
    return SaganEditor(g, state["attribute"], state["image_size"], "last", torch.device("cpu"))


if __name__ == "__main__":
    main()
