"""The whole experiment as plain Python, without Prefect: every stage of `flows.stages.STAGES` in order,
with timings (`faceaug run`). The Prefect flow (flows/augment_and_verify.py) runs the same stages.

Independent jobs of an `isolated` stage (editor and verifier trainings) run in `workers` spawned
processes with one torch thread each; the other stages' jobs run in this process, one after another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures.process import BrokenProcessPool

from flows.progress import Follower, ProgressFile, wait_following
from flows.stages import STAGES, Job, Progress, Stage, check_config, stage as stage_named
from pipeline.atomic import write_json_atomic
from pipeline.config import RunConfig
from pipeline.workers import worker_pool
from pipeline.layout import RunLayout


def in_worker(stage_name: str, cfg_json: str, job: Job, progress_log: str | None = None):
    """Run one job of a stage in this (fresh) process with one torch thread. Its progress goes to
    `progress_log` (which the waiting process relays: flows/progress.py), or is printed."""
    import torch

    torch.set_num_threads(1)
    cfg = RunConfig.model_validate_json(cfg_json)
    progress = ProgressFile(progress_log) if progress_log else (lambda m: print(m, flush=True))
    return stage_named(stage_name).run(cfg, job, progress)


def _log_of(stage: Stage, job: Job, cfg: RunConfig) -> str:
    return str(RunLayout(cfg).progress_log(stage.name, stage.label(job)))


def isolated(stage: Stage, job: Job, cfg: RunConfig, progress: Progress = print):
    """Run one job in a fresh spawned process with one torch thread, relaying its progress lines to
    `progress` as they come.

    Inside a daemonic worker process (a Dask worker: already a process of its own, and not
    allowed children) the job runs in that process instead."""
    if mp.current_process().daemon:
        return stage.run(cfg, job, progress)
    return parallel(stage, [job], cfg, 1, progress, spawn_one=True)[0]


def parallel(stage: Stage, jobs: list[Job], cfg: RunConfig, workers: int, progress: Progress = print,
             spawn_one: bool = False) -> list:
    """Run a stage's jobs in `workers` spawned processes (one torch thread each), relaying every job's
    progress lines to `progress` while they run; errors name the job."""
    if (workers <= 1 or len(jobs) <= 1) and not spawn_one:
        return [_in_this_process(stage, cfg, job, progress) for job in jobs]
    cfg_json = cfg.model_dump_json()
    logs = [_log_of(stage, job, cfg) for job in jobs]
    follower = Follower(logs, progress)
    with worker_pool(max(workers, 1), mp.get_context("spawn")) as pool:  # workers die with this process
        futures = [pool.submit(in_worker, stage.name, cfg_json, job, log) for job, log in zip(jobs, logs)]
        wait_following(futures, follower)
        out = []
        for job, fut in zip(jobs, futures):
            try:
                out.append(fut.result())
            except BrokenProcessPool as exc:  # kept as such: the Prefect flow retries it as transient
                raise BrokenProcessPool(_died(stage, job, exc)) from None
            except Exception as exc:
                raise RuntimeError(f"stage {stage.name!r} failed for {stage.label(job)}: {type(exc).__name__}: {exc}") from exc
        return out


def _in_this_process(stage: Stage, cfg: RunConfig, job: Job, progress: Progress):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: the same numbers whichever way the job runs
    try:
        return stage.run(cfg, job, progress)
    finally:
        torch.set_num_threads(threads)


def _died(stage: Stage, job: Job, exc: BrokenProcessPool) -> str:
    return (f"stage {stage.name!r}: a worker process died while running {stage.label(job)} (killed by a signal, "
            f"e.g. out of memory: {exc}); finished work is kept, run again to resume")


def run_stage(stage: Stage, cfg: RunConfig, progress: Progress = print, workers: int | None = None):
    """Plan a stage's jobs, run them, finish it; returns `finish`'s result, or the jobs' results."""
    jobs = stage.jobs(cfg)
    if stage.isolated:
        results = parallel(stage, jobs, cfg, workers or cfg.workers or os.cpu_count() or 1, progress)
    else:
        results = [stage.run(cfg, job, progress) for job in jobs]
    return stage.finish(cfg, results, progress) if stage.finish else results


def run_all(cfg: RunConfig, *, progress: Progress = print) -> dict:
    """Every stage in order; finished work is reused, so running it again continues after an interruption."""
    check_config(cfg)
    layout = RunLayout(cfg)
    layout.root.mkdir(parents=True, exist_ok=True)
    cfg.save(layout.root)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    results = {}
    for number, stage in enumerate(STAGES, 1):
        t = time.perf_counter()
        progress(f"== stage {number}/{len(STAGES)}: {stage.name}")
        results[stage.name] = run_stage(stage, cfg, progress)
        timings[stage.name] = round(time.perf_counter() - t, 1)
        progress(f"== stage {number}/{len(STAGES)}: {stage.name} finished in {timings[stage.name]:.0f} s")
        write_json_atomic({"stages_seconds": timings}, layout.timings)
    timings["total"] = round(time.perf_counter() - started, 1)
    write_json_atomic({"stages_seconds": timings}, layout.timings)
    return {"results": results["evaluate"][0], "timings": timings, "report": results["report"][0]}
