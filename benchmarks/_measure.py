"""What every benchmark here measures with: FLOPs, the machine's matmul peak, median wall time, a header.

Achieved FLOP/s are always reported against the matmul peak measured in the same run, so a figure
says what fraction of this machine's arithmetic the workload uses.
"""

from __future__ import annotations

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


def matmul_peak(dtype: torch.dtype, device: str, n: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of an n x n matmul: this machine's practical peak for `dtype`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = min(median_seconds(lambda: a @ b, 1, device) for _ in range(repeats))
    return 2 * n**3 / best


def machine(device: str) -> dict:
    return {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__}
