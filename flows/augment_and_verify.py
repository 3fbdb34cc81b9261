"""Prefect orchestration of the experiment: `augment-and-verify` and its stage flows.

Thin wrappers only: the stages and their order are `flows.stages.STAGES`, the same list `faceaug run`
(flows/run.py) follows without Prefect. Each stage is a flow of its own (`prepare-data`,
`train-editors`, `score-editors`, `augment`, `train-verifiers`, `identity-preservation`,
`evaluate`, `report`) that submits one task per job on the task runner the config's `engine`
section picks (threads on this machine, or Dask on a local or an existing cluster), and can be run
alone with the same parameters as the parent. Every job resumes or reuses finished work from the
files it wrote, so a re-run after a failure or a kill continues, whatever Prefect's database remembers.

No Prefect caching and no persisted task results: every job finds its own finished work on disk (checked
against checksums and training keys), so Prefect has nothing to remember, and no file it could read back
(a result record names its own serializer, pickle included) is ever written or read. Every task and
flow here sets `persist_result=False`, whatever PREFECT_RESULTS_PERSIST_BY_DEFAULT says.

Parameters: `profile` (tiny | demo | evidence | paper) and `overrides` (dotted config keys to
values, e.g. {"verifier.seeds": [0, 1, 2]}); they are validated against the typed run config and
the registries before any task starts, and a bad key or value fails the run with the key named.
"""

# (No `from __future__ import annotations` here: the served runner loads this file by path and
# must resolve the parameter types to build their schema.)
import json
import os
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import (create_link_artifact, create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.progress import PrefectProgress
from flows.stages import STAGES, Stage, check_config
from pipeline.atomic import write_json_atomic
from pipeline.config import ConfigError, RunConfig, load_config
from pipeline.layout import RunLayout

Profile = Literal["tiny", "demo", "evidence", "paper"]


class StageFailed(RuntimeError):
    """A stage failed permanently; the message names the stage, its input and the reason."""


@contextmanager
def _stage(stage: str, what: str):
    try:
        yield
    except Exception as exc:
        raise StageFailed(f"stage {stage!r} failed for {what}: {type(exc).__name__}: {exc}") from exc


def _transient(task, task_run, state) -> bool:
    """Retry only what may succeed on a second try (I/O hiccups, a worker process lost);
    bad data or a bad config fails at once."""
    exc = state.data
    exc = getattr(exc, "__cause__", None) or exc
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return isinstance(exc, (OSError, TimeoutError, ConnectionError, BrokenProcessPool, EOFError))


RETRY = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5,
             retry_condition_fn=_transient)


def _cfg(cfg_json: str) -> RunConfig:
    return RunConfig.model_validate_json(cfg_json)


def _log(message: str) -> None:
    get_run_logger().info(message)


@task(persist_result=False, result_serializer="json")
def run_job(stage_name: str, cfg_json: str, job: dict) -> Any:
    """One job of one stage (configured per stage by `_job_task`)."""
    from flows.run import isolated
    from flows.stages import stage as stage_named

    stage = stage_named(stage_name)
    progress = PrefectProgress()  # the task run's log, and a live progress artifact per counted task
    with _stage(stage.name, stage.label(job)):
        if stage.isolated:
            return isolated(stage, job, _cfg(cfg_json), progress)
        return stage.run(_cfg(cfg_json), job, progress)


def _job_task(stage: Stage):
    options = dict(name=stage.slug, task_run_name=f"{stage.slug}-{{job}}", persist_result=False, result_serializer="json")
    if stage.isolated or stage.concurrent:
        options.update(RETRY)
    return run_job.with_options(**options)


@task(name="finish", persist_result=False, result_serializer="json")
def finish_stage(stage_name: str, cfg_json: str, results: list) -> Any:
    from flows.stages import stage as stage_named

    stage = stage_named(stage_name)
    with _stage(stage.name, "its summary"):
        return stage.finish(_cfg(cfg_json), results, _log)


def task_runner(cfg: RunConfig):
    """The task runner for the stage flows, from the config's `engine` section."""
    engine = cfg.engine
    if engine.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if engine.dask_address:
            return DaskTaskRunner(address=engine.dask_address)
        # One task per worker process; each training task trains with one torch thread (flows/run.py).
        return DaskTaskRunner(cluster_kwargs={"n_workers": engine.dask_workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=cfg.workers or os.cpu_count() or 2)


def _gather(futures: list, what: str) -> list:
    """Wait for `futures`, keeping a progress artifact on the run up to date; results in order."""
    if not futures:
        return []
    artifact = create_progress_artifact(0.0, description=f"{what}: 0/{len(futures)} done")
    for done, future in enumerate(as_completed(futures), 1):
        future.result()  # a failure surfaces here, with the stage's own message
        update_progress_artifact(artifact, 100.0 * done / len(futures), description=f"{what}: {done}/{len(futures)} done")
    return [f.result() for f in futures]


def _resolve(profile: str, overrides: Optional[dict]) -> RunConfig:
    try:
        return check_config(load_config(profile, overrides or {}))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _stage_flow(stage: Stage):
    """A flow that runs one stage: its jobs as tasks (submitted side by side where the stage allows), then its finish."""

    def run_stage(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> Any:
        cfg = _resolve(profile, overrides)
        cfg_json = cfg.model_dump_json()
        jobs = stage.jobs(cfg)
        job_task = _job_task(stage)
        if stage.concurrent:
            results = _gather([job_task.with_options(task_run_name=f"{stage.slug}-{stage.label(j)}").submit(stage.name, cfg_json, j)
                               for j in jobs], stage.name)
        else:
            results = [job_task.with_options(task_run_name=f"{stage.slug}-{stage.label(j)}")(stage.name, cfg_json, j) for j in jobs]
        return finish_stage(stage.name, cfg_json, results) if stage.finish else results

    run_stage.__name__ = stage.slug.replace("-", "_")
    run_stage.__doc__ = f"The {stage.name!r} stage of augment-and-verify."
    return flow(name=stage.slug, log_prints=True, persist_result=False, result_serializer="json")(run_stage)


STAGE_FLOWS = {stage.name: _stage_flow(stage) for stage in STAGES}


def _publish(cfg: RunConfig, report_path: str) -> None:
    """The run page's artifacts: the headline table, a markdown summary, a link to report.html."""
    report = json.loads((Path(cfg.output_dir) / "report.json").read_text())
    columns = ("arm", "editor", "pair_set", "difference", "adjusted_verdict", "verdict", "mdd", "positive_control_fraction", "vs_baseline")
    rows = [{k: r[k] for k in columns} for r in report["headline"]]
    if rows:
        create_table_artifact(key="verification-headline", table=rows,
                              description="each edited arm vs its no-edit control (AUC, Holm-adjusted verdicts)")
    md = "\n".join(f"- {line}" for line in report["summary"])
    create_markdown_artifact(key="results-summary", markdown=f"# augment-and-verify: {cfg.profile}\n\nReport: `{report_path}`\n\n{md}")
    create_link_artifact(key="report", link=Path(report_path).as_uri(), link_text="report.html", description="open from disk")


@flow(name="augment-and-verify", log_prints=True, persist_result=False, result_serializer="json")
def augment_and_verify(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> str:
    """Render or check the data, train and score the editors, augment, train and evaluate the verifiers, report."""
    cfg = _resolve(profile, overrides)  # a bad key or value fails here, before any task
    cfg.save(cfg.output_dir)
    results, timings = {}, {}
    started = time.perf_counter()
    for number, stage in enumerate(STAGES, 1):
        stage_flow = STAGE_FLOWS[stage.name]
        if stage.concurrent:
            stage_flow = stage_flow.with_options(task_runner=task_runner(cfg))
        print(f"== stage {number}/{len(STAGES)}: {stage.name}")
        t = time.perf_counter()
        results[stage.name] = stage_flow(profile, overrides)
        timings[stage.name] = round(time.perf_counter() - t, 1)
        print(f"== stage {number}/{len(STAGES)}: {stage.name} finished in {timings[stage.name]:.0f} s")
        write_json_atomic({"stages_seconds": timings, "through": "the Prefect flow"}, RunLayout(cfg).timings)  # the report shows them
    timings["total"] = round(time.perf_counter() - started, 1)
    write_json_atomic({"stages_seconds": timings, "through": "the Prefect flow"}, RunLayout(cfg).timings)
    report = results["report"][0]
    _publish(cfg, report)
    print(f"report: {report}")
    print("editor success (added / removed): " + json.dumps({f"{s['editor']}/{s['attribute']}": [s['added']['success_rate'], s['removed']['success_rate']]
                                                             for s in results["score editors"]}))
    return report
