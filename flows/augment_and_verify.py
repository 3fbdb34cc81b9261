"""Prefect orchestration of the experiment: `augment-and-verify` and its stages.

Thin wrappers only: every task calls a stage function that also runs without Prefect
(`faceaug run` does the same sequence in plain Python). Each stage resumes or reuses
finished work from the files it wrote, so a re-run after a failure or a kill continues,
whatever Prefect's own database remembers.

    prepare data -> train-editors (one task per attribute) -> editor scores
    -> augment (one task per attribute x shard) -> train-verifiers (one task per arm x seed)
    -> evaluation -> report

The three fan-out stages are flows of their own, run on the task runner the config's `engine`
section picks: threads on this machine, or Dask (`prefect-dask`'s DaskTaskRunner) on a local
cluster or an existing one. Each stage flow takes the same parameters as the parent and can be
run alone.

Caching: the tasks that train or write are cached by Prefect on (task, parameters, code version,
digest of the files that mark the work finished). The key only exists once those files exist, so
a cache hit can never return work that is not on disk; delete an editor's directory and its task
runs again.

Parameters: `profile` (tiny | demo | evidence | paper) and `overrides` (dotted config keys to
values, e.g. {"verifier.seeds": [0, 1, 2]}); the overrides are validated against the typed run
config before any task starts, and a bad key or value fails the run with the key named.
"""

# (No `from __future__ import annotations` here: the served runner loads this file by path and
# must resolve the parameter types to build their schema.)
import hashlib
import json
import os
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import (create_link_artifact, create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipeline.config import RunConfig, load_config

Profile = Literal["tiny", "demo", "evidence", "paper"]
_PACKAGES = ("pipeline", "editing", "recognition", "flows")


def _code_version() -> str:
    """Digest of this repository's Python sources: a code change invalidates Prefect's cache."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


CODE_VERSION = _code_version()


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


def _read(url: str) -> Optional[bytes]:
    """A marker file's bytes from any fsspec filesystem, or None if it does not exist."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _cached_on(markers: Callable[..., list[str]], *inputs: str):
    """A Prefect cache key over (task, config, `inputs` parameters, code version, finished-work files),
    or no key (no caching) while any of those files is missing."""

    def key(context, parameters: dict) -> Optional[str]:
        named = {k: parameters[k] for k in inputs}
        contents = [_read(str(url)) for url in markers(_cfg(parameters["cfg_json"]), **named)]
        if any(c is None for c in contents):
            return None
        h = hashlib.sha256(f"{context.task.name}|{CODE_VERSION}|{parameters['cfg_json']}|{json.dumps(named, sort_keys=True)}".encode())
        for c in contents:
            h.update(c)
        return h.hexdigest()

    return key


def _editor_markers(cfg: RunConfig, editor: str, attribute: str) -> list[str]:
    from editing.training import editor_dir

    return [str(editor_dir(cfg, attribute, editor) / "editor.json")]


def _augment_markers(cfg: RunConfig, editor: str, attribute: str) -> list[str]:
    from editing.augment import SUMMARY, augmented_dir

    return [f"{augmented_dir(cfg, attribute, editor)}/{SUMMARY}"]


def _verifier_markers(cfg: RunConfig, arm: str, seed: int) -> list[str]:
    from recognition.experiment import verifier_dir

    return [str(verifier_dir(cfg, arm, seed) / name) for name in ("verifier.pt", "training.json")]


# ---- tasks ------------------------------------------------------------------------------------
@task(name="prepare-data", **RETRY)
def prepare_data_task(cfg_json: str) -> dict:
    from pipeline.ingest import prepare_data

    with _stage("prepare data", "the configured dataset"):
        return prepare_data(_cfg(cfg_json), progress=_log)


@task(name="train-editor", task_run_name="train-editor-{editor}-{attribute}", persist_result=True,
      cache_key_fn=_cached_on(_editor_markers, "editor", "attribute"), **RETRY)
def train_editor_task(cfg_json: str, editor: str, attribute: str) -> str:
    from recognition.stages import isolated

    with _stage("train editor", f"editor {editor!r}, attribute {attribute!r}"):
        return isolated(("editor", attribute, editor), _cfg(cfg_json))


@task(name="score-editor", task_run_name="score-editor-{editor}-{attribute}")
def score_editor_task(cfg_json: str, editor: str, attribute: str) -> dict:
    from editing.evaluate import evaluate_stage

    with _stage("score editor", f"editor {editor!r}, attribute {attribute!r}"):
        return evaluate_stage(_cfg(cfg_json), attribute, editor_name=editor, progress=_log)


@task(name="plan-augment", task_run_name="plan-augment-{editor}-{attribute}", **RETRY)
def plan_augment_task(cfg_json: str, editor: str, attribute: str) -> list[int]:
    from editing.augment import augmentation_for

    with _stage("augment", f"editor {editor!r}, attribute {attribute!r} (planning)"):
        return augmentation_for(_cfg(cfg_json), attribute, editor=editor, device="cpu").plan()


@task(name="augment-shard", task_run_name="augment-{editor}-{attribute}-shard{shard}", **RETRY)
def augment_shard_task(cfg_json: str, editor: str, attribute: str, shard: int) -> dict:
    from editing.augment import augmentation_for

    with _stage("augment", f"editor {editor!r}, attribute {attribute!r}, shard {shard}"):
        return augmentation_for(_cfg(cfg_json), attribute, editor=editor).write([shard], progress=_log)


@task(name="finish-augment", task_run_name="finish-augment-{editor}-{attribute}", persist_result=True,
      cache_key_fn=_cached_on(_augment_markers, "editor", "attribute"))
def finish_augment_task(cfg_json: str, editor: str, attribute: str, started: float, written: list) -> dict:
    from editing.augment import augmentation_for, finish_stage

    cfg = _cfg(cfg_json)
    with _stage("augment", f"editor {editor!r}, attribute {attribute!r} (summary)"):
        return finish_stage(cfg, augmentation_for(cfg, attribute, editor=editor, device="cpu"), written, started)


@task(name="train-verifier", task_run_name="train-verifier-{arm}-seed{seed}", cache_key_fn=_cached_on(_verifier_markers, "arm", "seed"),
      persist_result=True, **RETRY)
def train_verifier_task(cfg_json: str, arm: str, seed: int) -> str:
    from recognition.stages import isolated

    with _stage("train verifier", f"arm {arm!r}, seed {seed}"):
        return isolated(("verifier", arm, seed), _cfg(cfg_json))


@task(name="evaluate")
def evaluate_task(cfg_json: str) -> dict:
    from recognition.experiment import evaluate_run

    with _stage("evaluate", "every arm and seed"):
        return evaluate_run(_cfg(cfg_json), progress=_log)


@task(name="report")
def report_task(cfg_json: str) -> str:
    from recognition.report import write_report

    cfg = _cfg(cfg_json)
    with _stage("report", str(cfg.output_dir)):
        report = write_report(cfg.output_dir)
    path = (Path(cfg.output_dir) / "report.html").resolve()
    rows = [{k: r[k] for k in ("arm", "test_set", "metric", "value", "difference")} for r in report["table"]]
    create_table_artifact(key="verification-metrics", table=rows, description="every metric per arm and test set, 95% intervals")
    md = ["| arm | test set | metric | value [95% CI] | vs. baseline |", "|---|---|---|---|---|"]
    md += [f"| {r['arm']} | {r['test_set']} | {r['metric']} | {r['value']} | {r['difference']} |" for r in rows]
    create_markdown_artifact(key="results-summary", markdown=f"# augment-and-verify: {cfg.profile}\n\nReport: `{path}`\n\n" + "\n".join(md))
    create_link_artifact(key="report", link=path.as_uri(), link_text="report.html", description="open from disk")
    return str(path)


# ---- stage flows ------------------------------------------------------------------------------
def task_runner(cfg: RunConfig):
    """The task runner for the fan-out stages, from the config's `engine` section."""
    engine = cfg.engine
    if engine.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if engine.dask_address:
            return DaskTaskRunner(address=engine.dask_address)
        # One task per worker process; each task trains with one torch thread (see recognition/stages.py).
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
    from pipeline.config import ConfigError

    try:
        return load_config(profile, overrides or {})
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


@flow(name="train-editors", log_prints=True)
def train_editors(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> list[str]:
    """Train (or resume, or reuse) one editor per attribute (and any other editor an arm names), concurrently."""
    from editing.training import training_jobs

    cfg = _resolve(profile, overrides)
    cfg_json = cfg.model_dump_json()
    return _gather([train_editor_task.submit(cfg_json, name, unit) for name, unit in training_jobs(cfg)], "editors")


@flow(name="augment", log_prints=True)
def augment(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> list[dict]:
    """Write every attribute's augmentation dataset, one task per shard still to write."""
    import time

    cfg = _resolve(profile, overrides)
    cfg_json = cfg.model_dump_json()
    started = time.perf_counter()
    jobs = [(e, a) for e, attributes in cfg.editor_plan().items() for a in attributes]
    plans = {job: plan_augment_task(cfg_json, *job) for job in jobs}
    shards = {job: [augment_shard_task.submit(cfg_json, *job, k) for k in todo] for job, todo in plans.items()}
    _gather([f for fs in shards.values() for f in fs], "augmentation shards")
    return [finish_augment_task(cfg_json, *job, started, [f.result() for f in fs]) for job, fs in shards.items()]


@flow(name="train-verifiers", log_prints=True)
def train_verifiers(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> list[str]:
    """Train (or resume, or reuse) every verifier arm x seed, concurrently."""
    cfg = _resolve(profile, overrides)
    cfg_json = cfg.model_dump_json()
    return _gather([train_verifier_task.submit(cfg_json, arm, s) for arm in cfg.verifier.arms for s in cfg.verifier.seeds],
                   "verifier arms x seeds")


@flow(name="augment-and-verify", log_prints=True)
def augment_and_verify(profile: Profile = "demo", overrides: Optional[dict[str, Any]] = None) -> str:
    """Render or check the data, train and score the editors, augment, train and evaluate the verifiers, report."""
    cfg = _resolve(profile, overrides)  # a bad key or value fails here, before any task
    cfg_json = cfg.model_dump_json()
    cfg.save(cfg.output_dir)
    prepare_data_task(cfg_json)
    train_editors.with_options(task_runner=task_runner(cfg))(profile, overrides)
    scores = [score_editor_task(cfg_json, e, a) for e, attributes in cfg.editor_plan().items() for a in attributes]
    augment.with_options(task_runner=task_runner(cfg))(profile, overrides)
    train_verifiers.with_options(task_runner=task_runner(cfg))(profile, overrides)
    evaluate_task(cfg_json)
    report = report_task(cfg_json)
    print(f"report: {report}")
    print("editor success (added / removed): " + json.dumps({f"{s['editor']}/{s['attribute']}": [s['added']['success_rate'], s['removed']['success_rate']] for s in scores}))
    return report
