"""What every benchmark here measures with: FLOPs, the machine's matmul peak, median wall time, a header.

Achieved FLOP/s are always reported against the matmul peak measured in the same run, so a figure
says what fraction of this machine's arithmetic the workload uses.

Run as a script it writes the machine and its fp32/bf16 matmul peaks as JSON (benchmarks/gpu_check.sh):

    python benchmarks/_measure.py --device cuda --out peaks.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class FlopCounter(TorchDispatchMode):
    """Counts matmul/conv FLOPs with torch's flop formulas, without module hooks
    (FlopCounterMode's hooks fail on the gradient penalty's double backward)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        counter = flop_registry.get(func._overloadpacket)
        if counter is not None:
            self.total += counter(*args, **kwargs, out_val=out)
        return out

    def get_total_flops(self) -> int:
        return self.total


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int, device: str) -> float:
    """Median wall time of `fn` over `repeats` calls, with the device synchronised around each."""
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def default_matmul_n(device: str) -> int:
    """2048 on a CPU (about 0.1 s per product); 8192 on a GPU, where a 2048 product (17 GFLOP, tens of
    microseconds on an H100) would mostly time the launch and the synchronisation, not the arithmetic."""
    return 8192 if device == "cuda" else 2048


def matmul_peak(dtype: torch.dtype, device: str, n: int | None = None, repeats: int | None = None) -> float:
    """Best FLOP/s of an n x n matmul: this machine's practical peak for `dtype`."""
    n = n or default_matmul_n(device)
    repeats = repeats or (20 if device == "cuda" else 10)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up: library initialisation and, on a GPU, clocks
    best = min(median_seconds(lambda: a @ b, 1, device) for _ in range(repeats))
    return 2 * n**3 / best


def machine(device: str) -> dict:
    return {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__}


def gpu_info() -> dict | None:
    """Name, compute capability, memory and SM count of the current CUDA device (None without one)."""
    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(p.total_memory / 2**30, 1),
            "multiprocessors": p.multi_processor_count, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "count": torch.cuda.device_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description="This machine's fp32 and bf16 matmul peaks (best of n x n products) as JSON.")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=0, help="matrix side (0: 8192 on a GPU, 2048 on a CPU)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    n = args.n or default_matmul_n(args.device)
    peaks = {"fp32": matmul_peak(torch.float32, args.device, n), "bf16": matmul_peak(torch.bfloat16, args.device, n)}
    out = {**machine(args.device), "gpu": gpu_info() if args.device == "cuda" else None, "matmul_n": n,
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "matmul_peak_flops": peaks}
    print(f"device {out['device']}: matmul peak ({n}^2) fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
