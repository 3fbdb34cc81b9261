"""Process pools for every stage that starts worker processes: workers that die with their parent, and a
pool whose `map` survives a worker dying (ingest, `data check --decode`, the synthetic renderer,
`faceaug run`'s trainings)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Initializer for every worker process the project starts: the worker is SIGKILLed when its parent dies.

    A pool's workers wait on a queue whose pipe they hold both ends of, so after `kill -9` of the
    run they would wait forever, reparented to PID 1. On Linux, prctl(PR_SET_PDEATHSIG) has the
    kernel kill them instead. The signal is tied to the *thread* that forked the worker: pools are
    created and used inside one `with` block, so that thread outlives its workers. Elsewhere (macOS)
    this is a no-op. `parent_pid` closes the race of a parent that died before the prctl ran.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no usable libc (a static or exotic build): nothing to ask the kernel
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def worker_pool(workers: int, mp_context=None) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process (see `die_with_parent`)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp_context, initializer=die_with_parent,
                               initargs=(os.getpid(),))


class CrashIsolatingPool:
    """A worker pool (see `worker_pool`) whose `map` survives a worker dying.

    A worker that dies (a decoder crashing on a hostile file, the out-of-memory killer) breaks the
    whole pool. `map` then reruns that batch one job per fresh process: a job that kills its worker
    again gets `crashed(job, reason)` as its result, so the culprit is reported by name and the rest
    of the work is kept, instead of a BrokenProcessPool traceback. Use it as a context manager.
    """

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "CrashIsolatingPool":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable, jobs: list, crashed: Callable) -> list:
        if self._pool is None:
            self._pool = worker_pool(self.workers)
        try:
            return list(self._pool.map(fn, jobs, chunksize=max(1, len(jobs) // (self.workers * 4))))
        except BrokenProcessPool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        results = []
        for job in jobs:
            try:
                with worker_pool(1) as alone:
                    results.append(alone.submit(fn, job).result())
            except BrokenProcessPool as exc:
                results.append(crashed(job, f"its worker process died while reading it ({exc}): a decoder crash "
                                            "on this file, or the process was killed (out of memory?)"))
        return results
