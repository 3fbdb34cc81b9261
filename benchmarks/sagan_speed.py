"""SaGAN speed against the machine: training iterations/s, editing images/s, FLOPs, fraction of matmul peak.

    python benchmarks/sagan_speed.py                       # paper architecture at 128 px + the demo config
    python benchmarks/sagan_speed.py --configs demo --iters 5 --out bench.json

For each configuration it times the trainer's real `sagan_iteration` (3 D updates + 1 G
update, batch 16) and the editor's real `edit` (inference mode), in fp32 and bf16 autocast,
counts FLOPs with torch.utils.flop_counter (convolutions and matmuls), and divides achieved
FLOP/s by this machine's matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import FlopCounter, machine, matmul_peak, median_seconds  # noqa: E402

from editing.networks import Discriminator, init_weights  # noqa: E402
from editing.sagan import Generator, SaganEditor, sagan_iteration  # noqa: E402
from pipeline.precision import autocast_dtype  # noqa: E402
from pipeline.config import load_config  # noqa: E402


def build(profile: str, device: str):
    cfg = load_config(profile)
    s, e = cfg.editor.sagan, cfg.editor
    size = 128 if profile == "paper" else cfg.data.image_size
    g = Generator(s.g_conv_dim, s.g_downsamples, s.g_res_blocks)
    d = Discriminator(size, s.d_conv_dim, s.d_layers)
    for m in (g, d):
        m.apply(init_weights)
        m.to(device, memory_format=torch.channels_last)
    fused = device == "cuda"
    opt_g = torch.optim.Adam(g.parameters(), lr=e.lr, betas=tuple(e.betas), fused=fused)
    opt_d = torch.optim.Adam(d.parameters(), lr=e.lr, betas=tuple(e.betas), fused=fused)
    return cfg, size, g, d, opt_g, opt_d


def bench_training(profile: str, device: str, precision: str, iters: int) -> dict:
    cfg, size, g, d, opt_g, opt_d = build(profile, device)
    bs = cfg.editor.batch_size
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 3, size, size, generator=gen) * 2 - 1).to(device).contiguous(memory_format=torch.channels_last)
    c = (torch.rand(64, generator=gen) > 0.5).float().to(device)

    def draw():
        idx = torch.randint(64, (bs,), generator=gen)
        return x[idx].contiguous(memory_format=torch.channels_last), c[idx]

    autocast = autocast_dtype(precision, torch.device(device))
    step = lambda: sagan_iteration(g, d, opt_g, opt_d, draw, cfg.editor.sagan, cfg.editor.n_critic, gen, autocast)  # noqa: E731
    with FlopCounter() as counter:
        step()
    flops = counter.get_total_flops()
    step()  # warm-up
    sec = median_seconds(step, iters, device)
    return {"seconds_per_iteration": sec, "iterations_per_s": 1 / sec, "images_per_s": bs * cfg.editor.n_critic / sec,
            "flops_per_iteration": flops, "achieved_flops": flops / sec}


def bench_editing(profile: str, device: str, precision: str, batch: int, repeats: int) -> dict:
    cfg, size, g, *_ = build(profile, device)
    with torch.no_grad(), FlopCounter() as counter:  # inference_mode convs bypass the flop formulas
        g(torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last), torch.ones(batch, device=device))
    flops = counter.get_total_flops() / batch
    editor = SaganEditor(g, "eyeglasses", size, "bench", torch.device(device), precision)  # the real inference path
    x = torch.rand(batch, 3, size, size) * 2 - 1
    t_ = torch.ones(batch)

    def run():
        return editor.edit(x, t_)

    run()  # warm-up
    sec = median_seconds(run, repeats, device)
    return {"images_per_s": batch / sec, "flops_per_image": flops, "achieved_flops": flops * batch / sec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="paper,demo")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--iters", type=int, default=3, help="timed training iterations (median)")
    ap.add_argument("--edit-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    peaks = {"fp32": matmul_peak(torch.float32, dev), "bf16": matmul_peak(torch.bfloat16, dev)}
    result = {**machine(dev), "matmul_peak_flops": peaks, "runs": []}
    print(f"device {result['device']}, {result['threads']} threads; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    print(f"{'config':6s} {'prec':5s} | {'train it/s':>10s} {'s/it':>7s} {'img/s':>7s} {'GFLOP/it':>9s} {'of peak':>7s} | {'edit img/s':>10s} {'GFLOP/img':>9s} {'of peak':>7s}")
    for profile in args.configs.split(","):
        for precision in args.precisions.split(","):
            tr = bench_training(profile, dev, precision, args.iters)
            ed = bench_editing(profile, dev, precision, args.edit_batch, max(3, args.iters))
            peak = peaks[precision]
            row = {"config": profile, "precision": precision, "training": tr, "editing": ed,
                   "training_fraction_of_peak": tr["achieved_flops"] / peak, "editing_fraction_of_peak": ed["achieved_flops"] / peak}
            result["runs"].append(row)
            print(f"{profile:6s} {precision:5s} | {tr['iterations_per_s']:10.3f} {tr['seconds_per_iteration']:7.2f} {tr['images_per_s']:7.1f} "
                  f"{tr['flops_per_iteration'] / 1e9:9.1f} {row['training_fraction_of_peak']:7.1%} | "
                  f"{ed['images_per_s']:10.1f} {ed['flops_per_image'] / 1e9:9.2f} {row['editing_fraction_of_peak']:7.1%}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
