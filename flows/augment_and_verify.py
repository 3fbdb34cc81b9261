"""Prefect orchestration of the experiment: `augment-and-verify` and its stages.

Thin wrappers only: every task calls a stage function that also runs without Prefect
(`faceaug run` does the same sequence in plain Python). Each stage resumes or reuses
finished work from the files it wrote, so a re-run after a failure continues, whatever
Prefect's own database remembers.

    prepare data -> editors (one per attribute, concurrently) -> editor scores -> augmentation
    -> verifier arms x seeds (concurrently) -> evaluation -> report

Parameters: `profile` (tiny | demo | evidence | paper) and `overrides` (dotted config keys to
values, e.g. {"verifier.seeds": [0, 1, 2]}); the overrides are validated against the typed run
config before any task starts, and a bad key or value fails the run with the key named.
"""

import json
import os
from pathlib import Path
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config import RunConfig, load_config

def _cfg(cfg_json: str) -> RunConfig:
    return RunConfig.model_validate_json(cfg_json)


def _log(message: str) -> None:
    get_run_logger().info(message)


@task(name="prepare-data", retries=2, retry_delay_seconds=[5, 30])
def prepare_data_task(cfg_json: str) -> dict:
    from pipeline.ingest import prepare_data

    return prepare_data(_cfg(cfg_json), progress=_log)


@task(name="train-editor", task_run_name="train-editor-{attribute}", retries=1, retry_delay_seconds=10)
def train_editor_task(cfg_json: str, attribute: str) -> str:
    from recognition.stages import isolated

    return isolated(("editor", attribute), _cfg(cfg_json))


@task(name="score-editor", task_run_name="score-editor-{attribute}")
def score_editor_task(cfg_json: str, attribute: str) -> dict:
    from editing.evaluate import evaluate_stage

    return evaluate_stage(_cfg(cfg_json), attribute, progress=_log)


@task(name="augment", task_run_name="augment-{attribute}", retries=2, retry_delay_seconds=[5, 30])
def augment_task(cfg_json: str, attribute: str) -> dict:
    from editing.augment import augment_stage

    return augment_stage(_cfg(cfg_json), attribute, progress=_log)


@task(name="train-verifier", task_run_name="train-verifier-{arm}-seed{seed}", retries=1, retry_delay_seconds=10)
def train_verifier_task(cfg_json: str, arm: str, seed: int) -> str:
    from recognition.stages import isolated

    return isolated(("verifier", arm, seed), _cfg(cfg_json))


@task(name="evaluate")
def evaluate_task(cfg_json: str) -> dict:
    from recognition.experiment import evaluate_run

    return evaluate_run(_cfg(cfg_json), progress=_log)


@task(name="report")
def report_task(cfg_json: str) -> str:
    from recognition.report import write_report

    cfg = _cfg(cfg_json)
    report = write_report(cfg.output_dir)
    path = (Path(cfg.output_dir) / "report.html").resolve()
    rows = [{k: r[k] for k in ("arm", "test_set", "metric", "value", "difference")} for r in report["table"]]
    create_table_artifact(key="verification-metrics", table=rows, description="every metric per arm and test set, 95% intervals")
    md = ["| arm | test set | metric | value [95% CI] | vs. baseline |", "|---|---|---|---|---|"]
    md += [f"| {r['arm']} | {r['test_set']} | {r['metric']} | {r['value']} | {r['difference']} |" for r in rows]
    create_markdown_artifact(key="results-summary", markdown=f"# augment-and-verify: {cfg.profile}\n\nReport: `{path}`\n\n" + "\n".join(md))
    create_link_artifact(key="report", link=path.as_uri(), link_text="report.html", description="open from disk")
    return str(path)


def _resolve(profile: str, overrides: dict[str, Any]) -> RunConfig:
    from pipeline.config import ConfigError

    try:
        return load_config(profile, overrides)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


@flow(name="augment-and-verify", task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2), log_prints=True)
# (No `from __future__ import annotations` here: the served runner loads this file by path and
# must resolve the parameter types to build their schema.)
def augment_and_verify(profile: Literal["tiny", "demo", "evidence", "paper"] = "demo", overrides: Optional[dict[str, Any]] = None) -> str:
    """Render or check the data, train and score the editors, augment, train and evaluate the verifiers, report."""
    from editing.training import training_units

    cfg = _resolve(profile, overrides or {})  # a bad key or value fails here, before any task
    cfg_json = cfg.model_dump_json()
    cfg.save(cfg.output_dir)
    prepare_data_task(cfg_json)
    editors = [train_editor_task.submit(cfg_json, u) for u in training_units(cfg)]
    for f in editors:
        f.result()
    scores = [score_editor_task(cfg_json, a) for a in cfg.editor.attributes]
    augmented = [augment_task.submit(cfg_json, a) for a in cfg.editor.attributes]
    for f in augmented:
        f.result()
    verifiers = [train_verifier_task.submit(cfg_json, arm, s) for arm in cfg.verifier.arms for s in cfg.verifier.seeds]
    for f in verifiers:
        f.result()
    evaluate_task(cfg_json)
    report = report_task(cfg_json)
    print(f"report: {report}")
    print("editor success (added / removed): " + json.dumps({s['attribute']: [s['added']['success_rate'], s['removed']['success_rate']] for s in scores}))
    return report
