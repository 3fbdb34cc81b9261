"""Verifier speed against the machine: training and embedding images/s, FLOPs per image, fraction of matmul peak.

    python benchmarks/verifier_speed.py                        # 64 and 128 px, batch 128 (train) / 256 (embed)
    python benchmarks/verifier_speed.py --sizes 64 --threads 1 --out bench.json
    python benchmarks/verifier_speed.py --sizes 48 --threads 1 --precision bf16 --embed-precision bf16

Times one real training step (the Verifier + CosFace head + SGD with nesterov momentum,
as train_verifier runs it: channels_last, autocast as --precision sets it) and the real `embed`
(flip-averaged, so two forward passes per image, inference mode). The stem follows
`small_input_for(size)`: 3x3 stride-1 (<= 32 px) or stride-2 (<= 64 px) without max-pool, the ImageNet stem
above. FLOPs are counted with torch.utils.flop_counter's formulas (convolutions and
matmuls) and achieved FLOP/s are divided by the fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import FlopCounter, machine, matmul_peak, median_seconds  # noqa: E402

from recognition.heads import CosFaceHead  # noqa: E402
from pipeline.precision import autocast_dtype  # noqa: E402
from recognition.backbones import small_input_for  # noqa: E402
from recognition.embedding import embed  # noqa: E402
from recognition.verifier import Verifier  # noqa: E402


def make_training_step(size: int, device: str, classes: int, embedding_dim: int, precision: str = "auto"):
    """The real verifier training step (Verifier + CosFace + SGD/nesterov, channels_last, autocast as
    verifier.precision sets it) as step(x, y)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = Verifier("resnet18", embedding_dim, small_input_for(size)).to(dev, memory_format=torch.channels_last).train()
    head = CosFaceHead(embedding_dim, classes).to(dev)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    autocast = autocast_dtype(precision, dev)

    def step(x, y):
        with torch.autocast(dev.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            emb = model(x)
        loss = F.cross_entropy(head(emb.float(), y), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_training(size: int, batch: int, device: str, repeats: int, classes: int, embedding_dim: int,
                   precision: str = "auto") -> dict:
    dev = torch.device(device)
    step = make_training_step(size, device, classes, embedding_dim, precision)
    x = (torch.rand(batch, 3, size, size) * 2 - 1).to(dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(classes, (batch,), device=dev)

    with FlopCounter() as counter:  # per-image FLOPs do not depend on the batch: count a small one
        step(x[:4], y[:4])
    flops = counter.get_total_flops() / 4
    if device == "cuda":
        step(x, y)  # warm-up (kernel selection); on CPU the counted step warms up enough
    sec = median_seconds(lambda: step(x, y), repeats, device)
    return {"images_per_s": batch / sec, "seconds_per_step": sec, "flops_per_image": flops, "achieved_flops": flops * batch / sec}


def bench_embedding(size: int, batch: int, device: str, repeats: int, embedding_dim: int, precision: str = "auto") -> dict:
    dev = torch.device(device)
    model = Verifier("resnet18", embedding_dim, small_input_for(size)).to(dev, memory_format=torch.channels_last).eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.no_grad(), FlopCounter() as counter:  # inference_mode convs bypass the flop formulas
        xd = x[:4].to(dev).contiguous(memory_format=torch.channels_last)
        model(xd)
        model(xd.flip(-1))
    flops = counter.get_total_flops() / 4
    if device == "cuda":
        embed(model, x, batch_size=batch, precision=precision)  # warm-up
    sec = median_seconds(lambda: embed(model, x, batch_size=batch, precision=precision), repeats, device)
    return {"images_per_s": batch / sec, "flops_per_image": flops, "achieved_flops": flops * batch / sec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--embed-batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1, help="timed repetitions (median)")
    ap.add_argument("--classes", type=int, default=1000, help="identities in the CosFace head")
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="training autocast, as verifier.precision")
    ap.add_argument("--embed-precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="embedding autocast, as evaluation.precision")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    peak = matmul_peak(torch.float32, dev)
    train_dtype = autocast_dtype(args.precision, torch.device(dev))
    embed_dtype = autocast_dtype(args.embed_precision, torch.device(dev))
    # Each rate is divided by the matmul peak of the dtype its convolutions run in.
    peaks = {None: peak, torch.bfloat16: matmul_peak(torch.bfloat16, dev) if torch.bfloat16 in (train_dtype, embed_dtype) else None}
    result = {**machine(dev), "precision": "bf16 autocast" if train_dtype else "fp32",
              "embedding_precision": "bf16 autocast" if embed_dtype else "fp32",
              "matmul_peak_fp32_flops": peak, "matmul_peak_bf16_flops": peaks[torch.bfloat16], "runs": []}
    print(f"device {result['device']}, {result['threads']} threads, training {result['precision']}, "
          f"embedding {result['embedding_precision']}; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s"
          + (f", bf16 {peaks[torch.bfloat16] / 1e9:.1f} GFLOP/s" if peaks[torch.bfloat16] else ""))
    print(f"{'px':>4s} {'stem':6s} | {'train img/s':>11s} {'GFLOP/img':>9s} {'of peak':>7s} | "
          f"{'embed img/s':>11s} {'GFLOP/img':>9s} {'of peak':>7s}")
    for size in (int(s) for s in args.sizes.split(",")):
        tr = bench_training(size, args.train_batch, dev, args.repeats, args.classes, args.embedding_dim, args.precision)
        em = bench_embedding(size, args.embed_batch, dev, args.repeats, args.embedding_dim, args.embed_precision)
        row = {"size": size, "small_input": small_input_for(size), "train_batch": args.train_batch,
               "embed_batch": args.embed_batch, "training": tr, "embedding": em,
               "training_fraction_of_peak": tr["achieved_flops"] / peaks[train_dtype],
               "embedding_fraction_of_peak": em["achieved_flops"] / peaks[embed_dtype]}
        result["runs"].append(row)
        print(f"{size:4d} {('s' + str(row['small_input'])) if row['small_input'] else 'imnet':6s} | {tr['images_per_s']:11.1f} "
              f"{tr['flops_per_image'] / 1e9:9.2f} {row['training_fraction_of_peak']:7.1%} | {em['images_per_s']:11.1f} "
              f"{em['flops_per_image'] / 1e9:9.2f} {row['embedding_fraction_of_peak']:7.1%}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
