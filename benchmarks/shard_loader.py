"""Is the shard loader fast enough to feed ResNet-18 training on this machine?

Measures, at 64 and 128 px (on --device: the CPU, or a GPU with bf16 autocast by default):
  (a) ShardImageDataset decoded images/s through a DataLoader (batch 64) for
      num_workers in {0, 1, 2} (--workers), over a synthetic store (or --store);
  (b) the verifier's real training step (benchmarks/verifier_speed.py: ResNet-18 with the stem
      `small_input_for(size)` picks, CosFace head, SGD, channels_last; --threads torch threads):
      images/s, FLOPs per image (convolutions/matmuls), achieved GFLOP/s;
  (c) that step fed by the loader, end to end, for each --fed-workers count (0 = decoding in the
      training process; more = a DataLoader with that many worker processes, collating batches in
      the workers, pinned memory and non-blocking copies on a GPU);
  (c') with --verifier-stream, the same step fed by train_verifier's own sample stream
      (recognition.verifier._batches: per-sample items, batches stacked in the training process,
      the flips applied there), for the same worker counts;
  (d) this machine's fp32 (and bf16) matmul peak (benchmarks/_measure.py, best of several n x n products).

    .venv/bin/python benchmarks/shard_loader.py --out /tmp/shard_loader.json
    python benchmarks/shard_loader.py --device cuda --sizes 128 --batch 256 --n 16384 \
        --workers 0 12 --fed-workers 0 12 --verifier-stream --steps 30 --threads 0      # a GPU machine

A worker-fed run first takes (workers + 2) warm-up steps, so the batches the workers prepared
while starting up are not counted as throughput; when the store runs out, the loader starts a
new epoch (the restart is counted, as train_verifier pays it too).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, matmul_peak, sync  # noqa: E402
from verifier_speed import bench_training, make_training_step  # noqa: E402

from pipeline.loader import ShardImageDataset  # noqa: E402
from pipeline.precision import autocast_dtype  # noqa: E402
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


def build_store(path: Path, n: int, size: int, identities: int, shard_rows: int = 1024, threads: int = 1) -> ShardStore:
    """n synthetic images in shards of `shard_rows`; image i is drawn from its own seeded generator, so the
    store does not depend on `threads`, the threads drawing and PNG-encoding the images (make_row)."""
    store = ShardStore(path, metadata={"benchmark": "synthetic", "size": size})

    def row(i: int) -> dict:
        rng = np.random.default_rng([size, i])
        return make_row(image=synthetic_face_like(rng, size), identity=i % identities, source_image_id=f"{i:06d}.jpg",
                        split="train", edit_kind="original", attributes=rng.integers(0, 2, 40))

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, n, shard_rows):
            store.write_shard(f"part-{start // shard_rows:05d}", list(pool.map(row, range(start, min(start + shard_rows, n)))))
    return store


def loader_rate(paths: list[str], num_workers: int, batch_size: int) -> float:
    ds = ShardImageDataset(paths, shuffle=True, flip=True)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    t0 = time.perf_counter()
    n = sum(len(batch["label"]) for batch in loader)  # includes worker start-up
    return n / (time.perf_counter() - t0)


def _epochs(make_iter):
    """Items of make_iter(epoch) for epoch 0, 1, ... without end."""
    epoch = 0
    while True:
        empty = True
        for item in make_iter(epoch):
            empty = False
            yield item
        if empty:
            raise ValueError("the store yields no batches: fewer images than one batch?")
        epoch += 1


def _timed(step, batches, steps: int, warmup: int, device: str) -> float:
    """images/s of `steps` training steps on batches (images, labels) already on the device, after `warmup` steps."""
    for _ in range(warmup):
        step(*next(batches))
    sync(device)
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        x, y = next(batches)
        step(x, y)
        n += len(y)
    sync(device)
    return n / (time.perf_counter() - t0)


def fed_train_rate(step, paths: list[str], batch: int, steps: int, num_classes: int, device: str = "cpu",
                   workers: int = 0) -> float:
    """Training steps whose batches come from the loader (collated in `workers` processes, or in this one)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    ds = ShardImageDataset(paths, flip=True, seed=1)

    def make_iter(epoch: int):
        ds.set_epoch(epoch)
        return iter(DataLoader(ds, batch_size=batch, num_workers=workers, drop_last=True, pin_memory=cuda))

    def batches():
        for b in _epochs(make_iter):
            x = b["image"].to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yield x, (b["label"] % num_classes).to(dev, non_blocking=True)

    return _timed(step, batches(), steps, 2 + workers, device)


def verifier_stream_rate(step, paths: list[str], batch: int, steps: int, num_classes: int, device: str = "cpu",
                         workers: int = 0) -> float:
    """Training steps fed the way train_verifier feeds them: recognition.verifier._batches (one sample per item,
    stacked in this process), a per-sample flip applied to the batch here, then copied to the device."""
    from recognition.verifier import _batches

    dev = torch.device(device)
    ds = ShardImageDataset(paths, seed=1)  # as recognition.verifier._dataset: shuffled, flips applied by the loop
    gen = torch.Generator().manual_seed(1)

    def batches():
        for images, labels in _batches(ds, batch, 0, workers):
            flips = torch.rand(len(images), generator=gen) < 0.5
            images = torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
            x = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yield x, (labels % num_classes).to(dev, non_blocking=True)

    return _timed(step, batches(), steps, 2 + workers, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="synthetic images per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--store", help="measure this existing store instead of synthetic ones (one size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader processes for (a)")
    ap.add_argument("--fed-workers", type=int, nargs="+", default=[0], help="loader processes feeding training (c)")
    ap.add_argument("--verifier-stream", action="store_true", help="also (c'): training fed by train_verifier's own stream")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of this process (0: leave torch's default)")
    ap.add_argument("--build-threads", type=int, default=0, help="threads encoding the synthetic store (0: --threads, at least 1)")
    ap.add_argument("--shard-rows", type=int, default=1024, help="rows per shard of the synthetic store (row groups of 256)")
    ap.add_argument("--classes", type=int, default=500)
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per size")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="training autocast, as verifier.precision (auto: bf16 on a GPU, fp32 on a CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--matmul-n", type=int, default=0, help="matmul side for the peak (0: 2048 on a CPU, 8192 on a GPU)")
    ap.add_argument("--out", default="shard_loader_benchmark.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = args.device
    autocast = autocast_dtype(args.precision, torch.device(dev))

    results: dict = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                                 "threads": torch.get_num_threads(), "batch": args.batch, **machine(dev)},
                     "device": dev, "precision": "bf16 autocast" if autocast else "fp32", "sizes": {}}
    peak = matmul_peak(torch.float32, dev, n=args.matmul_n or None, repeats=5)
    results["matmul_peak_gflops"] = peak / 1e9
    bf16_peak = matmul_peak(torch.bfloat16, dev, n=args.matmul_n or None, repeats=5) if autocast else None
    results["matmul_peak_bf16_gflops"] = bf16_peak / 1e9 if bf16_peak else None
    step_peak = bf16_peak or peak  # the peak of the dtype the step's convolutions run in

    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            ds = ShardImageDataset(args.store, split=None, shuffle=False)
            size = int(next(iter(ds))["image"].shape[-1])
            plan = [(size, [args.store])]
        else:
            plan = []
            for size in args.sizes:
                t0 = time.perf_counter()
                store = build_store(Path(tmp) / f"s{size}", args.n, size, args.classes, args.shard_rows,
                                    args.build_threads or max(1, args.threads))
                mb = sum(e.bytes for e in store.entries()) / 1e6
                print(f"built {args.n} images at {size}px: {mb:.1f} MB "
                      f"({mb * 1e6 / args.n / 1e3:.1f} kB/img) in {time.perf_counter() - t0:.1f}s", flush=True)
                plan.append((size, [store.path]))
        for size, paths in plan:
            r: dict = {"loader_img_s": {}}
            for w in args.workers:
                r["loader_img_s"][str(w)] = loader_rate(paths, w, args.batch)
            tr = bench_training(size, args.batch, dev, args.steps, args.classes, args.embedding_dim, args.precision)
            r["flops_per_img"], r["train_img_s"] = tr["flops_per_image"], tr["images_per_s"]
            r["achieved_gflops"] = tr["achieved_flops"] / 1e9
            r["fraction_of_matmul_peak"] = r["achieved_gflops"] * 1e9 / step_peak
            r["loader_train_ratio"] = {w: v / r["train_img_s"] for w, v in r["loader_img_s"].items()}
            step = make_training_step(size, dev, args.classes, args.embedding_dim, args.precision)
            r["fed_train_img_s_by_workers"] = {str(w): fed_train_rate(step, paths, args.batch, args.steps, args.classes, dev, w)
                                               for w in args.fed_workers}
            r["fed_train_img_s"] = max(r["fed_train_img_s_by_workers"].values())
            r["fed_fraction_of_bare"] = {w: v / r["train_img_s"] for w, v in r["fed_train_img_s_by_workers"].items()}
            if args.verifier_stream:
                r["verifier_stream_img_s_by_workers"] = {}
                for w in args.fed_workers:
                    try:
                        r["verifier_stream_img_s_by_workers"][str(w)] = verifier_stream_rate(
                            step, paths, args.batch, args.steps, args.classes, dev, w)
                    except Exception as exc:  # a private function of recognition.verifier: report, do not fail
                        r.setdefault("verifier_stream_errors", {})[str(w)] = f"{type(exc).__name__}: {exc}"
            results["sizes"][str(size)] = r
            print(f"measured {size}px", flush=True)

    print()
    print(f"fp32 matmul peak: {results['matmul_peak_gflops']:.1f} GFLOP/s"
          + (f", bf16 {results['matmul_peak_bf16_gflops']:.1f} GFLOP/s" if bf16_peak else "")
          + f" ({dev}, {results['machine']['threads']} threads, training {results['precision']})")
    ws = [str(w) for w in args.workers]
    fws = [str(w) for w in args.fed_workers]
    head = (["size"] + [f"loader w={w} img/s" for w in ws]
            + ["train img/s", "GFLOP/img", "GFLOP/s", "of peak"] + [f"fed w={w} img/s" for w in fws]
            + ([f"stream w={w} img/s" for w in fws] if args.verifier_stream else [])
            + [f"ratio w={w}" for w in ws])
    print(" | ".join(head))
    for size, r in results["sizes"].items():
        stream = r.get("verifier_stream_img_s_by_workers", {})
        cells = ([f"{size}px"] + [f"{r['loader_img_s'][w]:.0f}" for w in ws]
                 + [f"{r['train_img_s']:.1f}", f"{r['flops_per_img'] / 1e9:.3f}", f"{r['achieved_gflops']:.1f}",
                    f"{r['fraction_of_matmul_peak']:.0%}"]
                 + [f"{r['fed_train_img_s_by_workers'][w]:.1f} ({r['fed_fraction_of_bare'][w]:.0%})" for w in fws]
                 + ([f"{stream[w]:.1f}" if w in stream else "error" for w in fws] if args.verifier_stream else [])
                 + [f"{r['loader_train_ratio'][w]:.1f}x" for w in ws])
        print(" | ".join(cells))
        for w, e in r.get("verifier_stream_errors", {}).items():
            print(f"  verifier stream, {w} workers: {e}")
    print("ratio = loader img/s / verifier train img/s (each measured alone); "
          "fed = training fed by the loader (w = loader processes; 0 = in the training process), % of the bare step")
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
