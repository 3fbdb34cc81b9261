"""Where a SaGAN training iteration and an edit spend their time (torch.profiler), at the paper configuration.

    python benchmarks/sagan_profile.py --configs paper --precision bf16 --threads 2 [--out docs/bench_sagan_profile_cpu.json]

`benchmarks/sagan_speed.py` says how far from the machine's matmul peak SaGAN runs; this says why: the
self CPU time of every operator, grouped into convolutions (forward and backward, the FLOPs), normalisation,
element-wise work, the optimiser and the rest, for one training iteration (3 D updates + 1 G update, batch
16, with the gradient penalty's double backward, bf16 autocast over fp32 weights) and one edit of a batch
(the editor's generator as `edit` runs it: bf16 weights, no autocast). Prints the groups and the 15
costliest operators of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sagan_speed import build  # noqa: E402

from editing.sagan import SaganEditor, sagan_iteration  # noqa: E402
from pipeline.precision import autocast_dtype  # noqa: E402

GROUPS = (
    ("convolution", ("conv", "mkldnn_convolution", "slow_conv", "convolution")),
    ("normalisation", ("instance_norm", "batch_norm", "native_batch_norm", "norm")),
    ("optimiser", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("copies and layout", ("copy_", "to_copy", "contiguous", "clone", "cat", "empty", "as_strided", "_to", "t", "view")),
    ("element-wise", ("add", "mul", "sub", "div", "relu", "leaky", "tanh", "sigmoid", "pow", "abs", "neg", "threshold",
                      "fill", "zero", "where", "rsub", "exp", "log", "binary_cross", "mean", "sum", "linalg")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def table(prof) -> dict:
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = defaultdict(float)
    for e in events:
        groups[group_of(e.key)] += e.self_cpu_time_total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
    return {"total_ms": total / 1e3,
            "groups": {g: {"ms": t / 1e3, "share": t / total} for g, t in sorted(groups.items(), key=lambda kv: -kv[1])},
            "top": [{"op": e.key, "ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total, "calls": e.count}
                    for e in top]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="paper")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--edit-batch", type=int, default=32)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    for config in args.configs.split(","):
        cfg, size, g, d, opt_g, opt_d = build(config, "cpu")
        gen = torch.Generator().manual_seed(0)
        x = (torch.rand(64, 3, size, size, generator=gen) * 2 - 1)
        c = (torch.rand(64, generator=gen) > 0.5).float()
        bs = cfg.editor.batch_size

        def draw():
            idx = torch.randint(64, (bs,), generator=gen)
            return x[idx].contiguous(), c[idx]

        autocast = autocast_dtype(args.precision, torch.device("cpu"))
        step = lambda: sagan_iteration(g, d, opt_g, opt_d, draw, cfg.editor.sagan, cfg.editor.n_critic, gen, autocast)  # noqa: E731
        step()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        training = table(prof)
        # the editor's real inference path (editing/gan.py: bf16 weights where the precision says so, no autocast)
        editor = SaganEditor(g, "eyeglasses", size, "profile", torch.device("cpu"), args.precision)
        batch, target = editor.batch(x[: args.edit_batch], torch.ones(args.edit_batch)), None
        target = torch.ones(len(batch)).to(editor.device, editor.dtype)
        with torch.inference_mode():
            editor.generator(batch, target)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                editor.generator(batch, target)
        editing = table(prof)
        out[config] = {"precision": args.precision, "threads": torch.get_num_threads(), "training_iteration": training,
                       "edit_batch": args.edit_batch, "edit": editing}
        for what, t in (("training iteration", training), (f"edit of {args.edit_batch} images", editing)):
            print(f"== {config} {args.precision}: {what}, {t['total_ms']:.0f} ms of operator time")
            for name, v in t["groups"].items():
                print(f"   {name:20s} {v['ms']:9.1f} ms  {100 * v['share']:5.1f}%")
            for e in t["top"]:
                print(f"     {e['op'][:48]:48s} {e['ms']:9.1f} ms  {100 * e['share']:5.1f}%  x{e['calls']}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
