"""Is the shard loader fast enough to feed ResNet-18 training on this machine?

Measures, at 64 and 128 px:
  (a) ShardImageDataset decoded images/s through a DataLoader (batch 64) for
      num_workers in {0, 1, 2}, over a synthetic store (or --store);
  (b) the verifier's real training step (benchmarks/verifier_speed.py: ResNet-18 with the stem
      `small_input_for(size)` picks, CosFace head, SGD, channels_last; --threads torch threads):
      images/s, FLOPs per image (convolutions/matmuls), achieved GFLOP/s;
  (c) that step fed by the loader in the same process (num_workers=0), end to end;
  (d) this machine's fp32 matmul peak (benchmarks/_measure.py, best of several n x n products).

    .venv/bin/python benchmarks/shard_loader.py --out /tmp/shard_loader.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import matmul_peak  # noqa: E402
from verifier_speed import bench_training, make_training_step  # noqa: E402

from pipeline.loader import ShardImageDataset  # noqa: E402
from pipeline.shards import ShardStore, make_row  # noqa: E402


def synthetic_face_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth gradient + a blurred ellipse + mild noise: PNG sizes like real photos, not noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 200, 3)
    grad = rng.uniform(-60, 60, (2, 3))
    img = base + x[..., None] * grad[0] + y[..., None] * grad[1]
    cy, cx, ry, rx = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.3)
    face = np.clip(1.0 - (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2), 0, 1)[..., None]
    img = img * (1 - face) + rng.uniform(120, 230, 3) * face
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def build_store(path: Path, n: int, size: int, identities: int, shard_rows: int = 1024) -> ShardStore:
    rng = np.random.default_rng(size)
    store = ShardStore(path, metadata={"benchmark": "synthetic", "size": size})
    rows = []
    for i in range(n):
        rows.append(make_row(image=synthetic_face_like(rng, size), identity=i % identities,
                             source_image_id=f"{i:06d}.jpg", split="train", edit_kind="original",
                             attributes=rng.integers(0, 2, 40)))
        if len(rows) == shard_rows or i == n - 1:
            store.write_shard(f"part-{i // shard_rows:05d}", rows)
            rows = []
    return store


def loader_rate(paths: list[str], num_workers: int, batch_size: int) -> float:
    ds = ShardImageDataset(paths, shuffle=True, flip=True)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    t0 = time.perf_counter()
    n = sum(len(batch["label"]) for batch in loader)  # includes worker start-up
    return n / (time.perf_counter() - t0)


def fed_train_rate(step, paths: list[str], batch: int, steps: int, num_classes: int) -> float:
    """Training steps whose batches come from the loader in the same process (num_workers=0)."""
    ds = ShardImageDataset(paths, flip=True, seed=1)
    it = iter(DataLoader(ds, batch_size=batch, num_workers=0, drop_last=True))
    for _ in range(2):  # warm-up steps
        b = next(it)
        step(b["image"].contiguous(memory_format=torch.channels_last), b["label"] % num_classes)
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        b = next(it)
        step(b["image"].contiguous(memory_format=torch.channels_last), b["label"] % num_classes)
        n += len(b["label"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="synthetic images per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--store", help="measure this existing store instead of synthetic ones (one size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=500)
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per size")
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--out", default="shard_loader_benchmark.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results: dict = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                                 "threads": args.threads, "batch": args.batch}, "sizes": {}}
    peak = matmul_peak(torch.float32, "cpu", n=args.matmul_n, repeats=5)
    results["matmul_peak_gflops"] = peak / 1e9

    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            ds = ShardImageDataset(args.store, split=None, shuffle=False)
            size = int(next(iter(ds))["image"].shape[-1])
            plan = [(size, [args.store])]
        else:
            plan = []
            for size in args.sizes:
                t0 = time.perf_counter()
                store = build_store(Path(tmp) / f"s{size}", args.n, size, args.classes)
                mb = sum(e.bytes for e in store.entries()) / 1e6
                print(f"built {args.n} images at {size}px: {mb:.1f} MB "
                      f"({mb * 1e6 / args.n / 1e3:.1f} kB/img) in {time.perf_counter() - t0:.1f}s", flush=True)
                plan.append((size, [store.path]))
        for size, paths in plan:
            r: dict = {"loader_img_s": {}}
            for w in args.workers:
                r["loader_img_s"][str(w)] = loader_rate(paths, w, args.batch)
            tr = bench_training(size, args.batch, "cpu", args.steps, args.classes, args.embedding_dim)
            r["flops_per_img"], r["train_img_s"] = tr["flops_per_image"], tr["images_per_s"]
            r["achieved_gflops"] = tr["achieved_flops"] / 1e9
            r["fraction_of_matmul_peak"] = r["achieved_gflops"] * 1e9 / peak
            r["loader_train_ratio"] = {w: v / r["train_img_s"] for w, v in r["loader_img_s"].items()}
            step = make_training_step(size, "cpu", args.classes, args.embedding_dim)
            r["fed_train_img_s"] = fed_train_rate(step, paths, args.batch, args.steps, args.classes)
            results["sizes"][str(size)] = r
            print(f"measured {size}px", flush=True)

    print()
    print(f"fp32 matmul peak ({args.matmul_n}², {args.threads} threads): {results['matmul_peak_gflops']:.1f} GFLOP/s")
    ws = [str(w) for w in args.workers]
    head = (["size"] + [f"loader w={w} img/s" for w in ws]
            + ["train img/s", "GFLOP/img", "GFLOP/s", "of peak", "fed train img/s"]
            + [f"ratio w={w}" for w in ws])
    print(" | ".join(head))
    for size, r in results["sizes"].items():
        cells = ([f"{size}px"] + [f"{r['loader_img_s'][w]:.0f}" for w in ws]
                 + [f"{r['train_img_s']:.1f}", f"{r['flops_per_img'] / 1e9:.3f}", f"{r['achieved_gflops']:.1f}",
                    f"{r['fraction_of_matmul_peak']:.0%}", f"{r['fed_train_img_s']:.1f}"]
                 + [f"{r['loader_train_ratio'][w]:.1f}x" for w in ws])
        print(" | ".join(cells))
    print("ratio = loader img/s / verifier train img/s (each measured alone); "
          "fed = training with the loader in the same process (num_workers=0)")
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
