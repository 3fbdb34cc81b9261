"""Where every artefact of a run lives, and which file marks it finished. The one map of a run directory:
stages, the CLI, the report and the Prefect flow's cache keys all ask it, so no path is joined twice.

    <output_dir>/
      config.json  data_summary.json  timings.json  results.json  report.{html,md,json}  roc_*.png
      shards/                          (or data.shard_root, any fsspec URL)
        originals/  lfw/               the ingested test and train images
        aug-<attribute>[@<editor>]/    original + added + removed per train image; augment_summary.json marks it done
      judge/attribute_classifier.pt    the independent attribute classifier that judges edits
      editors/<editor>-<attribute>/    a trained editor (editor.json marks it done), its evaluation.json,
                                       identity.json, selection.json, probe.*, samples/
      verifiers/<arm>/seed-<s>/        verifier.pt + training.json mark it done; embeddings.npz
      compare/<attribute>/             `faceaug editors compare`
      ablation/<attribute>/            benchmarks/sagan_ablation.py
    data/synthetic/<parameters>/       the rendered synthetic benchmark, shared by runs with equal parameters
"""

from __future__ import annotations

from pathlib import Path

ALL = "all"  # the training unit of a multi-attribute editor (one model, one directory, for every attribute)

# Files inside an editor directory that stages other than the trainer read.
EDITOR_JSON = "editor.json"  # written last by every trainer: marks the editor finished
EVALUATION_JSON = "evaluation.json"
IDENTITY_JSON = "identity.json"
SELECTION_JSON = "selection.json"
# Inside a verifier directory.
VERIFIER_WEIGHTS = "verifier.pt"
VERIFIER_RECORD = "training.json"
EMBEDDINGS = "embeddings.npz"
# Inside an augmentation dataset.
AUGMENT_SUMMARY = "augment_summary.json"  # written last: marks the dataset finished


class RunLayout:
    """The paths of one run (a RunConfig's output_dir and shard root)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.root = Path(cfg.output_dir)

    @classmethod
    def of_run(cls, run_dir: str | Path) -> "RunLayout":
        """The layout of a finished run directory, from the config.json saved in it (wherever it was moved to)."""
        from pipeline.config import read_config

        run_dir = Path(run_dir)
        return cls(read_config(run_dir).model_copy(update={"output_dir": run_dir}))

    # -- files at the top ---------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def data_summary(self) -> Path:
        return self.root / "data_summary.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    def report(self, suffix: str = "html") -> Path:
        return self.root / f"report.{suffix}"

    def figure(self, name: str) -> Path:
        return self.root / f"{name}.png"

    def progress_log(self, stage: str, job: str) -> Path:
        """The progress lines of one job of a stage run in a worker process (flows/progress.py)."""
        return self.root / "progress" / stage.replace(" ", "-") / f"{job.replace('/', '_')}.log"

    # -- shard datasets -----------------------------------------------------------------------------
    def shards(self, dataset: str) -> str:
        """URL of one of the run's shard datasets (any fsspec URL; `data.shard_root` may put it elsewhere)."""
        root = self.cfg.data.shard_root or str(self.root / "shards")
        return f"{root.rstrip('/')}/{dataset}"

    @property
    def originals(self) -> str:
        return self.shards("originals")

    @property
    def lfw(self) -> str:
        return self.shards("lfw")

    def augmented_name(self, attribute: str, editor: str | None = None) -> str:
        """aug-<attribute> for the run's editor; aug-<attribute>@<editor> for another (the `aug-...@<editor>` arms)."""
        suffix = "" if editor in (None, self.cfg.editor.name) else f"@{editor}"
        return f"aug-{attribute}{suffix}"

    def augmented(self, attribute: str, editor: str | None = None) -> str:
        return self.shards(self.augmented_name(attribute, editor))

    def augment_done(self, attribute: str, editor: str | None = None) -> str:
        return f"{self.augmented(attribute, editor)}/{AUGMENT_SUMMARY}"

    # -- editors and their judge ----------------------------------------------------------------------
    def editor_dir(self, attribute: str, editor: str | None = None) -> Path:
        """An editor's directory: <editor>-<attribute>, or <editor>-all for a multi-attribute model."""
        return self.root / "editors" / f"{editor or self.cfg.editor.name}-{attribute}"

    def evaluation(self, attribute: str, editor: str | None = None) -> Path:
        return self.editor_dir(attribute, editor) / EVALUATION_JSON

    def identity(self, attribute: str, editor: str | None = None) -> Path:
        return self.editor_dir(attribute, editor) / IDENTITY_JSON

    def editor_dirs(self) -> list[Path]:
        """Every editor directory of the run, sorted."""
        base = self.root / "editors"
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    @property
    def judge(self) -> Path:
        return self.root / "judge" / "attribute_classifier.pt"

    def compare_dir(self, attribute: str) -> Path:
        return self.root / "compare" / attribute

    def ablation_dir(self, attribute: str) -> Path:
        return self.root / "ablation" / attribute

    # -- verifiers ------------------------------------------------------------------------------------
    def verifier_dir(self, arm: str, seed: int) -> Path:
        return self.root / "verifiers" / arm / f"seed-{seed}"

    def verifier_done(self, arm: str, seed: int) -> list[Path]:
        d = self.verifier_dir(arm, seed)
        return [d / VERIFIER_WEIGHTS, d / VERIFIER_RECORD]

    # -- the synthetic benchmark ------------------------------------------------------------------------
    @property
    def synthetic(self) -> Path:
        """Where the synthetic benchmark for this config lives (shared between runs with equal parameters)."""
        s = self.cfg.data.synthetic
        tag = (f"n{s.identities}-k{s.images_per_identity}{'f' if s.fixed_count else ''}-s{s.render_size}-l{s.lfw_identities}"
               f"-p{s.lfw_pairs_per_fold or 'auto'}-seed{s.seed}")
        knobs = {k: v for k, v in s.style.model_dump().items() if v != 1.0}
        if knobs:  # the original benchmark's directory name stays as it was
            tag += "-" + "-".join(f"{k}{v:g}" for k, v in knobs.items())
        if s.train_mixing != 1.0:
            tag += f"-trainmix{s.train_mixing:g}"
        if s.extra_test_identities:  # only then: a benchmark without extra test identities keeps its name
            tag += f"-xt{s.extra_test_identities}"
        return Path("data") / "synthetic" / tag
