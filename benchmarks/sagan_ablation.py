"""SaGAN ablation: the same editor trained under different loss options, scored and probed alike.

    python benchmarks/sagan_ablation.py --profile evidence --attribute eyeglasses --iterations 750 \
        --variant base --variant 'mask_tv=5 editor.sagan.mask_tv=5' --variant 'mask_l1=10 editor.sagan.mask_l1=10'

Each `--variant 'NAME [key=value ...]'` is the profile plus those overrides (and `--set` ones for
all), trained for `--iterations` on the profile's run originals (`<run>/shards/originals`, which
must exist: `faceaug data prepare --profile ...`) into `<run>/ablation/<attribute>/<NAME>/`,
two variants at a time with one thread each. Every variant is then scored by the run's
independent judge (`editing.evaluate`: success both ways, preservation, mask quality) and taken
apart by `editing.sagan_probe` (its AMN output through its own mask, the true region and no mask,
judged by the judge and by its own discriminator). A finished variant is reused, a partial one
resumed. Writes `<run>/ablation/<attribute>/ablation.json` and `ablation.md`; prints the table.

One seed per variant: the intervals are over test faces, not over training runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shlex
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from editing.evaluate import evaluate_editor, format_success, get_judge, held_out
from editing.registry import get_plugin
from editing.sagan_probe import probe_sagan
from flows.run import in_worker
from pipeline.config import load_config
from pipeline.layout import RunLayout

DEFAULT_VARIANTS = (
    "base",
    "mask_l1=10 editor.sagan.mask_l1=10",
    "mask_tv=5 editor.sagan.mask_tv=5",
    "lambda_cls=1 editor.sagan.lambda_cls=1",
)


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, *overrides = shlex.split(text)
    bad = [o for o in overrides if "=" not in o]
    if bad or "/" in name:
        raise SystemExit(f"--variant {text!r}: expected 'NAME key=value ...'")
    return name, overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="evidence")
    ap.add_argument("--attribute", default="eyeglasses")
    ap.add_argument("--iterations", type=int, default=750)
    ap.add_argument("--variant", action="append", help="'NAME key=value ...' (repeatable; default: base, mask_l1, mask_tv, lambda_cls=1)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every variant")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    base = load_config(args.profile, args.overrides)
    run = Path(base.output_dir)
    out = run / "ablation" / args.attribute
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    configs = {}
    for name, overrides in variants:
        configs[name] = load_config(args.profile, [*args.overrides, *overrides, f"output_dir={out / name}",
                                                   f"data.shard_root={run / 'shards'}", f"editor.iterations={args.iterations}",
                                                   f"editor.attributes=[{args.attribute}]", "editor.threads=1"])

    with ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {name: pool.submit(in_worker, "train editors", cfg.model_dump_json(), {"editor": "sagan", "unit": args.attribute}) for name, cfg in configs.items()}
        for name, fut in futures.items():
            print(f"{name}: trained in {fut.result()}", flush=True)

    judge = get_judge(base)
    test = held_out(base)
    rows, lines = {}, [
        f"SaGAN ablation, {args.attribute}, {args.iterations} iterations, profile {args.profile}, {len(test.images)} held-out test faces; "
        f"judge balanced accuracy on real test images {judge.test_accuracy.get(args.attribute):.3f}", "",
        "| variant | overrides | added [95% CI] | removed [95% CI] | change outside / inside region | mask mass inside | IoU@0.5 "
        "| mask mean inside | true-region blend: added / removed | D head on own edits: added / removed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, overrides in variants:
        directory = RunLayout(configs[name]).editor_dir(args.attribute)
        editor = get_plugin("sagan").editor.load(directory)
        ev = evaluate_editor(editor, args.attribute, test, judge, mask_threshold=base.evaluation.mask_threshold)
        ev.pop("_edited"), ev.pop("_mask")
        probe, _ = probe_sagan(directory, args.attribute, test, judge)
        rows[name] = {"overrides": overrides, "evaluation": ev, "probe": probe}
        tr, own = probe["variants"]["true region"]["judge"], probe["variants"]["own mask"]["discriminator"]
        lines.append(
            f"| {name} | {' '.join(overrides) or '(profile)'} | {format_success(ev['added'])} | {format_success(ev['removed'])} "
            f"| {ev['preservation']['mean_abs_change_outside_region']:.4f} / {ev['preservation']['mean_abs_change_inside_region']:.3f} "
            f"| {ev['mask']['mass_inside_region']:.3f} | {ev['mask']['iou_at_threshold']:.3f} | {ev['mask']['mean_inside']:.3f} "
            f"| {100 * tr['added']['success_rate']:.0f}% / {100 * (tr['removed']['success_rate'] or 0):.0f}% "
            f"| {100 * own['added']['success_rate']:.0f}% / {100 * (own['removed']['success_rate'] or 0):.0f}% |")
    (out / "ablation.json").write_text(json.dumps({"profile": args.profile, "attribute": args.attribute,
                                                   "iterations": args.iterations, "variants": rows}, indent=2) + "\n")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
