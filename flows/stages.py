"""The stages of `augment-and-verify`, in order: the one list that `faceaug run`, the Prefect flow and
its stage flows all read.

    prepare data -> train editors -> score editors -> augment -> train verifiers
    -> identity preservation -> evaluate -> report

A stage is a set of independent jobs (one per editor and attribute, per augmentation shard, per arm
and seed...) and an optional `finish` that runs once they are all done. Every job resumes or reuses
finished work from the files it wrote (`pipeline.layout` says which file marks each job done), so
running a stage again after an interruption continues where it stopped. Jobs are plain dicts of
JSON values, so they can travel to a Prefect task, a Dask worker or a spawned process.

`isolated` stages (the trainings) run each job in a fresh process with one torch thread: on a
2-core CPU two one-thread trainings side by side use the cores better than one two-thread training,
and a crash or a kill of one job cannot take the others' state with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.config import ConfigError, RunConfig
from pipeline.layout import RunLayout

Progress = Callable[[str], None]
Job = dict


@dataclass(frozen=True)
class Stage:
    name: str  # "train editors"
    jobs: Callable[[RunConfig], list[Job]]  # the independent units of work, planned once per run
    run: Callable[[RunConfig, Job, Progress], Any]  # do one job (resuming or reusing finished work)
    label: Callable[[Job], str] = lambda job: "-".join(str(v) for v in job.values()) or "all"
    finish: Callable[[RunConfig, list, Progress], Any] | None = None  # after every job, with their results
    isolated: bool = False  # each job in its own process with one torch thread (trainings)
    concurrent: bool = False  # jobs may run side by side (threads or Dask workers) in the Prefect flow

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")


# ---- the stages' jobs ---------------------------------------------------------------------------------

def _prepare(cfg: RunConfig, job: Job, progress: Progress) -> dict:
    from pipeline.ingest import prepare_data

    return prepare_data(cfg, progress=progress)


def _editor_jobs(cfg: RunConfig) -> list[Job]:
    from editing.train import training_jobs

    return [{"editor": name, "unit": unit} for name, unit in training_jobs(cfg)]


def _train_editor(cfg: RunConfig, job: Job, progress: Progress) -> str:
    from editing.train import train_editor

    return str(train_editor(cfg.for_editor(job["editor"]), job["unit"], progress=progress))


def _editor_attribute_jobs(cfg: RunConfig) -> list[Job]:
    return [{"editor": name, "attribute": a} for name, attributes in cfg.editor_plan().items() for a in attributes]


def _score_editor(cfg: RunConfig, job: Job, progress: Progress) -> dict:
    from editing.evaluate import evaluate_stage

    return evaluate_stage(cfg, job["attribute"], editor_name=job["editor"], progress=progress)


def _augment_jobs(cfg: RunConfig) -> list[Job]:
    """Plan every augmentation dataset (check it may be resumed, remove what a killed writer left) and
    return the shards still to write, one job each."""
    from editing.augment import augmentation_for

    jobs = []
    for job in _editor_attribute_jobs(cfg):
        todo = augmentation_for(cfg, job["attribute"], editor=job["editor"], device="cpu").plan()
        jobs += [{**job, "shard": k, "planned": time.time()} for k in todo]
    return jobs


def _augment_shard(cfg: RunConfig, job: Job, progress: Progress) -> dict:
    from editing.augment import augmentation_for

    written = augmentation_for(cfg, job["attribute"], editor=job["editor"]).write([job["shard"]], progress=progress)
    return {**written, "editor": job["editor"], "attribute": job["attribute"], "planned": job["planned"]}


def _augment_finish(cfg: RunConfig, written: list[dict], progress: Progress) -> list[dict]:
    """Summarise every augmentation dataset once all its shards are committed."""
    from editing.augment import augmentation_for, finish_stage

    summaries = []
    for job in _editor_attribute_jobs(cfg):
        mine = [w for w in written if w["editor"] == job["editor"] and w["attribute"] == job["attribute"]]
        started = min((w["planned"] for w in mine), default=time.time())
        aug = augmentation_for(cfg, job["attribute"], editor=job["editor"], device="cpu")
        summaries.append(finish_stage(cfg, aug, mine, time.time() - started))
    return summaries


def _verifier_jobs(cfg: RunConfig) -> list[Job]:
    return [{"arm": arm, "seed": seed} for arm in cfg.verifier.arms for seed in cfg.verifier.seeds]


def _train_verifier(cfg: RunConfig, job: Job, progress: Progress) -> str:
    from recognition.experiment import train_arm

    return str(train_arm(cfg, job["arm"], job["seed"], progress=progress))


def _identity(cfg: RunConfig, job: Job, progress: Progress) -> dict | None:
    from recognition.identity import identity_stage

    return identity_stage(cfg, job["attribute"], editor_name=job["editor"], progress=progress)


def _evaluate(cfg: RunConfig, job: Job, progress: Progress) -> dict:
    from recognition.evaluation import evaluate_run

    return evaluate_run(cfg, progress=progress)


def _report(cfg: RunConfig, job: Job, progress: Progress) -> str:
    from recognition.report import write_report

    write_report(cfg.output_dir)
    return str(RunLayout(cfg).report("html").resolve())


def _single(cfg: RunConfig) -> list[Job]:
    return [{}]


STAGES: tuple[Stage, ...] = (
    Stage("prepare data", _single, _prepare, label=lambda job: "all"),
    Stage("train editors", _editor_jobs, _train_editor, isolated=True, concurrent=True),
    Stage("score editors", _editor_attribute_jobs, _score_editor),
    Stage("augment", _augment_jobs, _augment_shard, label=lambda job: f"{job['editor']}-{job['attribute']}-shard{job['shard']}",
          finish=_augment_finish, concurrent=True),
    Stage("train verifiers", _verifier_jobs, _train_verifier, isolated=True, concurrent=True),
    Stage("identity preservation", _editor_attribute_jobs, _identity),
    Stage("evaluate", _single, _evaluate, label=lambda job: "all"),
    Stage("report", _single, _report, label=lambda job: "all"),
)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name or s.slug == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def check_config(cfg: RunConfig) -> RunConfig:
    """Check every registered name the config uses (editors, verifier head and backbone, protocols) before any
    stage runs; a bad one raises ConfigError naming its key and what is available."""
    from editing.registry import EDITORS
    from pipeline.registry import PluginLoadError, UnknownNameError
    from recognition.backbones import BACKBONES
    from recognition.heads import HEADS
    from recognition.protocols import PROTOCOLS

    checks = [(EDITORS, name, "editor.name" if name == cfg.editor.name else "verifier.arms") for name in cfg.editor_plan()]
    checks += [(HEADS, cfg.verifier.head, "verifier.head"), (BACKBONES, cfg.verifier.arch, "verifier.arch")]
    checks += [(PROTOCOLS, p, "evaluation.protocols") for p in cfg.evaluation.protocols]
    for registry, name, key in checks:
        try:
            registry.get(name)
        except (UnknownNameError, PluginLoadError) as exc:
            raise ConfigError(f"invalid run config:\n  config key '{key}': {exc}") from None
    return cfg
