"""The whole experiment as plain Python: the stages of `augment-and-verify`, in order, with timings.

    prepare data -> train one editor per attribute -> score editors -> augment into shards
    -> train the verifier arms x seeds -> evaluate on CelebA test identities and LFW -> report

Every stage resumes or reuses finished work, so re-running after an interruption continues.
Independent work (editors per attribute, verifier arms x seeds) runs in `workers` processes with
one torch thread each: on a 2-core CPU, two 1-thread trainings side by side use the cores better
than one 2-thread training. The Prefect flow (flows/) wraps these same functions.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from pipeline.config import RunConfig


def in_worker(fn_name: str, cfg_json: str, *args):
    """Run one stage function in a fresh process with one torch thread."""
    import torch

    from pipeline.config import RunConfig

    torch.set_num_threads(1)
    cfg = RunConfig.model_validate_json(cfg_json)
    if fn_name == "editor":  # args: unit (attribute or 'all'), editor name
        from editing.training import train_editor

        unit, editor = args
        return str(train_editor(cfg.for_editor(editor), unit, progress=lambda m: print(m, flush=True)))
    if fn_name == "verifier":
        from recognition.experiment import train_arm

        return str(train_arm(cfg, *args, progress=lambda m: print(m, flush=True)))
    raise ValueError(fn_name)


def isolated(job: tuple, cfg: RunConfig):
    """Run one (fn_name, *args) job in a fresh spawned process with one torch thread.

    Inside a daemonic worker process (a Dask worker: already a process of its own, and not
    allowed children) the job runs in that process instead."""
    if mp.current_process().daemon:
        return in_worker(job[0], cfg.model_dump_json(), *job[1:])
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(in_worker, job[0], cfg.model_dump_json(), *job[1:]).result()


def parallel(jobs: list[tuple], cfg: RunConfig, workers: int) -> list:
    """Run (fn_name, *args) jobs in `workers` spawned processes; errors name the job."""
    cfg_json = cfg.model_dump_json()
    if workers <= 1 or len(jobs) <= 1:
        return [in_worker(job[0], cfg_json, *job[1:]) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [(job, pool.submit(in_worker, job[0], cfg_json, *job[1:])) for job in jobs]
        out = []
        for job, fut in futures:
            try:
                out.append(fut.result())
            except Exception as exc:
                raise RuntimeError(f"stage {job[0]} {job[1:]} failed: {type(exc).__name__}: {exc}") from exc
        return out


def run_all(cfg: RunConfig, *, progress: Callable[[str], None] = print) -> dict:
    from editing.augment import augment_stage
    from editing.evaluate import evaluate_stage
    from editing.training import training_jobs
    from pipeline.ingest import prepare_data
    from recognition.experiment import evaluate_run
    from recognition.report import write_report

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    workers = cfg.workers or os.cpu_count() or 1
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str, fn):
        t = time.perf_counter()
        progress(f"== {name}")
        result = fn()
        timings[name] = round(time.perf_counter() - t, 1)
        progress(f"== {name}: {timings[name]:.0f} s")
        (out / "timings.json").write_text(json.dumps({"stages_seconds": timings}, indent=2) + "\n")
        return result

    stage("prepare data", lambda: prepare_data(cfg, progress=progress))
    plan = cfg.editor_plan()  # the run's editor for every attribute, plus editors named by `aug-...@<editor>` arms
    stage("train editors", lambda: parallel([("editor", unit, name) for name, unit in training_jobs(cfg)], cfg, workers))
    stage("score editors", lambda: [evaluate_stage(cfg, a, editor_name=e, progress=progress) for e, attrs in plan.items() for a in attrs])
    stage("augment", lambda: [augment_stage(cfg, a, editor=e, progress=progress) for e, attrs in plan.items() for a in attrs])
    stage("train verifiers", lambda: parallel([("verifier", arm, s) for arm in cfg.verifier.arms for s in cfg.verifier.seeds], cfg, workers))
    results = stage("evaluate", lambda: evaluate_run(cfg, progress=progress))
    timings["total"] = round(time.perf_counter() - started, 1)
    (out / "timings.json").write_text(json.dumps({"stages_seconds": timings}, indent=2) + "\n")
    stage("report", lambda: write_report(out))
    return {"results": results, "timings": timings, "report": str(out / "report.html")}
