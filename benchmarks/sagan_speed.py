"""SaGAN speed against the machine: training iterations/s, editing images/s, FLOPs, fraction of matmul peak.

    python benchmarks/sagan_speed.py                       # paper architecture at 128 px + the demo config
    python benchmarks/sagan_speed.py --configs demo --iters 5 --out bench.json
    python benchmarks/sagan_speed.py --configs paper --precisions bf16 --edit-batch 1024 --compile   # on a GPU

For each configuration it times the trainer's real `sagan_iteration` (3 D updates + 1 G
update, batch 16) and the editor's real `edit` (inference mode), in fp32 and bf16 autocast,
counts FLOPs with torch.utils.flop_counter (convolutions and matmuls), and divides achieved
FLOP/s by this machine's matmul peak measured in the same run.

`edit` takes CPU images and returns CPU images (the augmentation's path), so on a GPU its rate
includes both transfers; the generator's rate on a batch already on the device is reported
beside it (`generator_images_per_s`). On a GPU the editor holds bf16 weights in channels_last.
With --compile the editor's generator is also wrapped in torch.compile (the pipeline does not
do this): the first call's time, compilation included, is reported as `compile_seconds`, then
both rates again, and `compile_speedup` says whether it pays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import FlopCounter, machine, matmul_peak, median_seconds, sync  # noqa: E402

from editing.networks import Discriminator, init_weights  # noqa: E402
from editing.sagan import Generator, SaganEditor, sagan_iteration  # noqa: E402
from pipeline.precision import autocast_dtype  # noqa: E402
from pipeline.config import load_config  # noqa: E402


def memory_format(device: str) -> torch.memory_format:
    """As the trainer has it (editing/gan.py GanTrainer.memory_format): channels_last on GPUs, NCHW on CPUs."""
    return torch.channels_last if device.startswith("cuda") else torch.contiguous_format


def build(profile: str, device: str):
    cfg = load_config(profile)
    s, e = cfg.editor.sagan, cfg.editor
    size = 128 if profile == "paper" else cfg.data.image_size
    g = Generator(s.g_conv_dim, s.g_downsamples, s.g_res_blocks)
    d = Discriminator(size, s.d_conv_dim, s.d_layers)
    for m in (g, d):
        m.apply(init_weights)
        m.to(device, memory_format=memory_format(device))
    fused = device == "cuda"
    opt_g = torch.optim.Adam(g.parameters(), lr=e.lr, betas=tuple(e.betas), fused=fused)
    opt_d = torch.optim.Adam(d.parameters(), lr=e.lr, betas=tuple(e.betas), fused=fused)
    return cfg, size, g, d, opt_g, opt_d


def bench_training(profile: str, device: str, precision: str, iters: int) -> dict:
    cfg, size, g, d, opt_g, opt_d = build(profile, device)
    bs = cfg.editor.batch_size
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 3, size, size, generator=gen) * 2 - 1).to(device).contiguous(memory_format=memory_format(device))
    c = (torch.rand(64, generator=gen) > 0.5).float().to(device)

    def draw():
        idx = torch.randint(64, (bs,), generator=gen)
        return x[idx].contiguous(memory_format=memory_format(device)), c[idx]

    autocast = autocast_dtype(precision, torch.device(device))
    step = lambda: sagan_iteration(g, d, opt_g, opt_d, draw, cfg.editor.sagan, cfg.editor.n_critic, gen, autocast)  # noqa: E731
    with FlopCounter() as counter:
        step()
    flops = counter.get_total_flops()
    step()  # warm-up
    sec = median_seconds(step, iters, device)
    return {"seconds_per_iteration": sec, "iterations_per_s": 1 / sec, "images_per_s": bs * cfg.editor.n_critic / sec,
            "flops_per_iteration": flops, "achieved_flops": flops / sec}


def bench_editing(profile: str, device: str, precision: str, batch: int, repeats: int, compile_mode: str | None = None) -> dict:
    cfg, size, g, *_ = build(profile, device)
    with torch.no_grad(), FlopCounter() as counter:  # inference_mode convs bypass the flop formulas
        g(torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=memory_format(device)), torch.ones(batch, device=device))
    flops = counter.get_total_flops() / batch
    editor = SaganEditor(g, "eyeglasses", size, "bench", torch.device(device), precision)  # the real inference path
    x = torch.rand(batch, 3, size, size) * 2 - 1
    t_ = torch.ones(batch)
    xd, td = editor.batch(x, t_), t_.to(editor.device, editor.dtype)  # already on the device, as edit() puts them

    def run():
        return editor.edit(x, t_)

    @torch.inference_mode()
    def generator_only():
        return editor.generator(xd, td)

    def rates() -> dict:
        sec = median_seconds(run, repeats, device)
        gsec = median_seconds(generator_only, repeats, device)
        return {"images_per_s": batch / sec, "achieved_flops": flops * batch / sec,
                "generator_images_per_s": batch / gsec, "generator_achieved_flops": flops * batch / gsec}

    run()  # warm-up
    generator_only()
    out = {"batch": batch, "flops_per_image": flops, "weights_dtype": str(editor.dtype).removeprefix("torch."),
           "memory_format": "channels_last" if editor.memory_format == torch.channels_last else "contiguous", **rates()}
    if compile_mode:
        editor.generator = torch.compile(editor.generator, mode=compile_mode, dynamic=False)
        sync(device)
        t = time.perf_counter()
        run()  # compiles (inside edit's inference mode), then runs once
        sync(device)
        compile_seconds = time.perf_counter() - t
        t = time.perf_counter()
        generator_only()  # may compile again: its input is not an inference tensor
        sync(device)
        compiled = {"mode": compile_mode, "compile_seconds": compile_seconds,
                    "generator_first_call_seconds": time.perf_counter() - t, **rates()}
        compiled["compile_speedup"] = compiled["images_per_s"] / out["images_per_s"]
        compiled["generator_compile_speedup"] = compiled["generator_images_per_s"] / out["generator_images_per_s"]
        out["compiled"] = compiled
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="paper,demo")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--iters", type=int, default=3, help="timed training iterations (median)")
    ap.add_argument("--edit-batch", type=int, default=16)
    ap.add_argument("--edit-repeats", type=int, default=0, help="timed edit calls (median; 0: max(3, --iters))")
    ap.add_argument("--compile", action="store_true", help="also time the edit with the generator in torch.compile")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune, ...)")
    ap.add_argument("--no-training", action="store_true", help="time editing only")
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
    print(f"{'config':6s} {'prec':5s} | {'train it/s':>10s} {'s/it':>7s} {'img/s':>7s} {'GFLOP/it':>9s} {'of peak':>7s} | "
          f"{'edit img/s':>10s} {'GFLOP/img':>9s} {'of peak':>7s} {'gen img/s':>10s}"
          + (f" | {'compiled edit':>13s} {'gen img/s':>10s} {'of peak':>7s} {'compile s':>9s}" if args.compile else ""))
    for profile in args.configs.split(","):
        for precision in args.precisions.split(","):
            tr = None if args.no_training else bench_training(profile, dev, precision, args.iters)
            ed = bench_editing(profile, dev, precision, args.edit_batch, args.edit_repeats or max(3, args.iters),
                               args.compile_mode if args.compile else None)
            peak = peaks[precision]
            row = {"config": profile, "precision": precision, "training": tr, "editing": ed,
                   "training_fraction_of_peak": tr["achieved_flops"] / peak if tr else None,
                   "editing_fraction_of_peak": ed["achieved_flops"] / peak}
            if args.compile:
                row["compiled_editing_fraction_of_peak"] = ed["compiled"]["achieved_flops"] / peak
            result["runs"].append(row)
            train = (f"{tr['iterations_per_s']:10.3f} {tr['seconds_per_iteration']:7.2f} {tr['images_per_s']:7.1f} "
                     f"{tr['flops_per_iteration'] / 1e9:9.1f} {row['training_fraction_of_peak']:7.1%}") if tr else f"{'-':>10s} {'':7s} {'':7s} {'':9s} {'':7s}"
            line = (f"{profile:6s} {precision:5s} | {train} | "
                    f"{ed['images_per_s']:10.1f} {ed['flops_per_image'] / 1e9:9.2f} {row['editing_fraction_of_peak']:7.1%} "
                    f"{ed['generator_images_per_s']:10.1f}")
            if args.compile:
                c = ed["compiled"]
                line += (f" | {c['images_per_s']:13.1f} {c['generator_images_per_s']:10.1f} "
                         f"{row['compiled_editing_fraction_of_peak']:7.1%} {c['compile_seconds']:9.1f}")
            print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
