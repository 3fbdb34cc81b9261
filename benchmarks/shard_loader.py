"""Is the shard loader fast enough to feed ResNet-18 training on this machine?

Measures, at 64 and 128 px:
  (a) ShardImageDataset decoded images/s through a DataLoader (batch 64) for
      num_workers in {0, 1, 2}, over a synthetic store (or --store);
  (b) ResNet-18 training throughput (forward + backward + SGD step, batch 64,
      channels_last, --threads torch threads), FLOPs per image (FlopCounterMode,
      one forward+backward; counts convolutions/matmuls, not BN/ReLU), achieved GFLOP/s;
  (c) training fed by the loader in the same process (num_workers=0), end to end;
  (d) this machine's fp32 matmul peak (torch.mm, best of several runs).

    .venv/bin/python benchmarks/shard_loader.py --out /tmp/shard_loader.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from pipeline.loader import ShardImageDataset
from pipeline.shards import ShardStore, make_row


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


def make_model(num_classes: int):
    import timm

    model = timm.create_model("resnet18", num_classes=num_classes, pretrained=False)
    return model.to(memory_format=torch.channels_last).train()


def train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def flops_per_image(model, size: int, batch: int = 8) -> float:
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def train_rate(model, size: int, batch: int, steps: int, warmup: int, num_classes: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,))
    for _ in range(warmup):
        train_step(model, opt, x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(model, opt, x, y)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))  # median step: robust to a slow first call


def fed_train_rate(model, paths: list[str], batch: int, steps: int, num_classes: int) -> float:
    """Training steps whose batches come from the loader in the same process (num_workers=0)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ds = ShardImageDataset(paths, flip=True, seed=1)
    it = iter(DataLoader(ds, batch_size=batch, num_workers=0, drop_last=True))
    for _ in range(2):  # warm-up steps
        b = next(it)
        train_step(model, opt, b["image"].to(memory_format=torch.channels_last), b["label"] % num_classes)
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        b = next(it)
        train_step(model, opt, b["image"].to(memory_format=torch.channels_last), b["label"] % num_classes)
        n += len(b["label"])
    return n / (time.perf_counter() - t0)


def matmul_peak(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="synthetic images per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--store", help="measure this existing store instead of synthetic ones (one size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=500)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per size")
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--out", default="shard_loader_benchmark.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results: dict = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                                 "threads": args.threads, "batch": args.batch}, "sizes": {}}
    peak = matmul_peak(args.matmul_n, repeats=5)
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
            model = make_model(args.classes)
            r["flops_per_img"] = flops_per_image(model, size)
            r["train_img_s"] = train_rate(model, size, args.batch, args.steps, 3, args.classes)
            r["achieved_gflops"] = r["train_img_s"] * r["flops_per_img"] / 1e9
            r["fraction_of_matmul_peak"] = r["achieved_gflops"] * 1e9 / peak
            r["loader_train_ratio"] = {w: v / r["train_img_s"] for w, v in r["loader_img_s"].items()}
            r["fed_train_img_s"] = fed_train_rate(model, paths, args.batch, args.steps, args.classes)
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
    print("ratio = loader img/s / ResNet-18 train img/s (each measured alone); "
          "fed = training with the loader in the same process (num_workers=0)")
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
