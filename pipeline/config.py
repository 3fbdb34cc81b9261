"""The typed run configuration: one frozen object, built from a named profile plus overrides.

    cfg = load_config("demo", overrides=["verifier.steps=2000", "data.image_size=48"])

Every model forbids unknown keys and validates values on load, so a typo fails with
the key named instead of passing silently. The same object is the Prefect flow
parameter, is saved as `config.json` beside every output, and goes inside every
checkpoint, so a model can be rebuilt from its file alone. Networks never take this
object: the code that builds them passes plain arguments.
"""

from __future__ import annotations

import json
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.attributes import EDITED_ATTRIBUTES

PROFILES = ("tiny", "demo", "evidence", "paper")
CONFIG_FILENAME = "config.json"


class ConfigError(ValueError):
    """A config that cannot be used; the message names every offending key."""


class _Frozen(BaseModel):
    # allow_inf_nan=False: no setting means anything at infinity or NaN (`verifier.lr=.inf` is a typo).
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse what pydantic's lax mode would quietly convert: `true` for a number (read as 1), and
        an empty string for a path (read as the current directory)."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        kinds = _leaf_types(field.annotation)
        if kinds and kinds <= {int, float, type(None)} and _has_bool(value):
            raise ValueError("expected a number, not a boolean (true/false)")
        if Path in kinds and isinstance(value, str) and not value.strip():
            none = "; use null for none" if type(None) in kinds else ""
            raise ValueError(f"must not be empty (an empty path would mean the current directory){none}")
        return value


def _leaf_types(annotation: Any) -> set:
    """The types an annotation is built from: int | None -> {int, NoneType}; tuple[int, ...] -> {int}."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple):
        return set().union(*(_leaf_types(a) for a in typing.get_args(annotation) if a is not Ellipsis))
    return {annotation} if isinstance(annotation, type) else {object}


def _has_bool(value: Any) -> bool:
    return isinstance(value, bool) or isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value)


class SyntheticStyle(_Frozen):
    """pipeline.synth.Style as config (1.0 everywhere: the original benchmark)."""

    glasses: float = Field(1.0, ge=0, le=10, description="frame width and lens opacity")
    beard: float = Field(1.0, ge=0, le=10, description="beard opacity and how far up the cheeks it reaches")
    smile: float = Field(1.0, ge=0, le=10, description="mouth corners, widening, squint, cheeks")
    mouth: float = Field(1.0, ge=0, le=10, description="how wide an open mouth opens")
    nuisance: float = Field(1.0, ge=0, le=10, description="spread of pose, lighting, colour cast, noise and blur per image")
    identity_spread: float = Field(1.0, ge=0, le=10, description="how different identities are (< 1: more alike)")


class SyntheticData(_Frozen):
    """Parameters of the synthetic benchmark (see pipeline/synth)."""

    identities: int = Field(400, ge=4, description="CelebA-format identities to render")
    images_per_identity: int = Field(20, ge=1, description="median images per identity (CelebA: 21)")
    fixed_count: bool = Field(False, description="every identity gets exactly images_per_identity images")
    render_size: int = Field(64, ge=16, le=512, description="side of the rendered square images, px")
    lfw_identities: int = Field(200, ge=4, description="LFW-format identities (disjoint from the CelebA ones)")
    lfw_pairs_per_fold: int | None = Field(None, ge=1, description="matched (= mismatched) pairs per fold; None fits the identities")
    seed: int = 0
    style: SyntheticStyle = Field(SyntheticStyle(), description="the renderer's knobs (pipeline/synth/style.py)")
    train_mixing: float = Field(1.0, ge=0, le=1, description="stress setting: < 1 makes training identities seldom vary in "
                                "the edited attributes (each keeps its variation with this probability)")
    extra_test_identities: int = Field(0, ge=0, description="more identities appended to the test partition only, from "
                                       "their own seed streams: every base image, label and partition line stays "
                                       "byte-identical, so the training and validation data (and every model trained "
                                       "on them) do not change. CelebA's real test split has ~1,000 identities; this "
                                       "lets the synthetic test set reach that size (e.g. identities=2000 gives 200 "
                                       "test identities, plus 800 here gives 1,000). Only data.split 'official' (the "
                                       "partition file) keeps the training data; the paper split re-ranks all identities")

class DataConfig(_Frozen):
    source: Literal["synthetic", "celeba"] = "synthetic"
    synthetic: SyntheticData = SyntheticData()
    celeba_dir: Path | None = Field(None, description="root of a real CelebA tree (img_align_celeba/, list_*.txt)")
    lfw_dir: Path | None = Field(None, description="root of a real LFW tree (lfw/, pairs.txt)")
    lfw_attributes: Path | None = Field(None, description="Kumar et al.'s lfw_attributes.txt for the LFW cross-attribute "
                                        "protocol; None: <LFW tree>/lfw_attributes.txt when it exists")
    image_size: int = Field(64, ge=16, le=512, description="side of the square images models see")
    split: Literal["paper", "official"] = Field("paper", description="paper: the most-imaged identities train, the rest test")
    test_identities: int = Field(2000, ge=1, description="identities held out for testing by the paper split")
    valid_identities: int = Field(0, ge=0, description="identities the paper split takes from the training identities for "
                                  "validation (editor checkpoint selection); the official split has its own")
    shard_root: str | None = Field(None, description="fsspec URL holding the run's shard datasets (s3://..., gs://..., "
                                   "a local path); None = <output_dir>/shards")
    lfw_crop_fraction: float = Field(0.6, gt=0.1, le=1.0, description="centre square kept from LFW images before resizing")
    on_bad_image: Literal["error", "skip"] = Field("error", description="skip: count and list bad images instead of failing")
    shard_rows: int = Field(2048, ge=16, description="rows per Parquet shard")

    @model_validator(mode="after")
    def _real_paths(self) -> "DataConfig":
        if self.source == "celeba" and (self.celeba_dir is None or self.lfw_dir is None):
            raise ValueError("data.source 'celeba' needs data.celeba_dir and data.lfw_dir")
        return self


class SaganParams(_Frozen):
    """SaGAN architecture and losses; defaults are the paper's (Tables 1-2, sections 2-3)."""

    g_conv_dim: int = Field(32, ge=4, description="channels of the first generator conv (paper: 32)")
    g_downsamples: int = Field(3, ge=1, le=4, description="stride-2 convs in AMN/SAN (paper: 3)")
    g_res_blocks: int = Field(4, ge=0, description="residual blocks in AMN/SAN (paper: 4)")
    d_conv_dim: int = Field(32, ge=4, description="channels of the first discriminator conv (paper: 32)")
    d_layers: int = Field(6, ge=2, le=8, description="stride-2 convs in D (paper: 6)")
    lambda_gp: float = Field(10.0, ge=0)
    lambda_cls: float = Field(1.0, ge=0, description="weight of the attribute losses (paper: 1, eqs. 3 and 11)")
    lambda_dual: float = Field(20.0, ge=0, description="λ1, dual reconstruction")
    lambda_identity: float = Field(100.0, ge=0, description="λ2, identity reconstruction")
    mask_l1: float = Field(0.0, ge=0, description="L1 penalty on the attention mask; not in the paper")
    mask_tv: float = Field(0.0, ge=0, description="total-variation penalty on the mask; not in the paper")
    cls_on_edits: float = Field(0.0, ge=0, description="not in the paper: D's attribute head also learns that an edited image still has "
                                "its source's attribute (weight, relative to lambda_cls), so a faint edit that only D reads as the "
                                "attribute stops satisfying the generator")
    identity_trains_mask: bool = Field(True, description="paper: True. False detaches the mask in the identity loss, so that "
                                       "loss trains the AMN to reproduce the input instead of shutting the mask (a fix for mask collapse)")
    cls_on_edits_warmup: int = Field(0, ge=0, description="not in the paper: iterations before cls_on_edits starts, then a linear "
                                     "ramp to its full weight over as many again (the mask forms on the attribute first)")
    d_noise: float = Field(0.0, ge=0, description="not in the paper: standard deviation of Gaussian noise added to every image the "
                           "discriminator sees, real and edited ([-1, 1] scale; 'instance noise'), so its attribute head cannot read a "
                           "faint change as the attribute")


class EditorConfig(_Frozen):
    name: str = Field("sagan", description="registered editor name (faceaug editors list)")
    attributes: tuple[str, ...] = tuple(EDITED_ATTRIBUTES)
    iterations: int = Field(2000, ge=1, description="generator updates per attribute")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    n_critic: int = Field(3, ge=1, description="discriminator updates per generator update (paper: 3)")
    sagan: SaganParams = SaganParams()
    params: dict[str, Any] = Field(default_factory=dict, description="extra parameters for plugin editors")
    checkpoint_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=1)
    threads: int = Field(0, ge=0, description="torch threads per training process; 0 = let the stage decide")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    balance_attribute: bool = Field(False, description="half of each batch has the attribute (not in the paper; helps rare attributes)")
    select_every: int = Field(0, ge=0, description="score the editor on the validation faces every N iterations and keep the best "
                              "checkpoint (editing/selection.py); 0: keep the last one, as the paper does")
    patience: int = Field(0, ge=0, description="stop after this many validation scorings without improvement (0: never stop early)")
    valid_images: int = Field(400, ge=8, description="validation faces an editor checkpoint is scored on")
    select_mask_target: float | None = Field(None, ge=0, le=1, description="rank first the checkpoints that meet both the success "
                                             "target and this share of mask mass inside the true region (editing/selection.py); "
                                             "None: the mask is not in the criterion")

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in value if a not in EDITED_ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; choose from {list(EDITED_ATTRIBUTES)}")
        if len(set(value)) != len(value):
            raise ValueError("attributes are listed twice")
        return value


class VerifierConfig(_Frozen):
    arch: str = Field("resnet18", description="registered backbone (recognition/backbones.py), trained from scratch")
    embedding_dim: int = Field(512, ge=8)
    head: str = Field("cosface", description="registered margin head (recognition/heads.py): cosface, arcface or a plugin's")
    margin: float = Field(0.35, ge=0, description="CosFace m (0.35) or ArcFace m (0.5)")
    scale: float = Field(30.0, gt=0, description="logit scale s")
    steps: int = Field(2000, ge=1, description="optimiser steps per arm and seed (equal compute across arms)")
    budget: Literal["equal_steps", "equal_epochs"] = "equal_steps"
    epochs: int = Field(10, ge=1, description="epochs per arm when budget is equal_epochs")
    batch_size: int = Field(128, ge=2)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    checkpoint_every: int = Field(200, ge=1, description="optimiser steps between resumable checkpoints")
    arms: tuple[str, ...] = Field(("baseline", "aug-eyeglasses", "aug-mouth_slightly_open", "aug-smiling", "aug-no_beard", "aug-all"))
    seeds: tuple[int, ...] = (0,)
    threads: int = Field(0, ge=0)
    reuse_from: tuple[str, ...] = Field((), description="finished run directories whose verifiers are reused where an arm's "
                                        "training stream, settings and seed match (e.g. the same training data with more "
                                        "test identities); the record names the verifier reused")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="training autocast; auto: bf16 on GPU, fp32 on CPU "
                                                        "(bf16 is 1.7x faster on CPUs with AVX-512 BF16: benchmarks/verifier_speed.py)")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one seed is needed")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds are listed twice: {list(value)} (a repeated seed is the same run again)")
        return value

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"baseline", "aug-all", *(f"aug-{a}" for a in EDITED_ATTRIBUTES)}
        unknown = [a for a in value if split_arm(a)[0] not in allowed or a.startswith("baseline@") or a.endswith("@")]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; choose from {sorted(allowed)}, "
                             f"optionally with '@<editor>' to augment with another registered editor (e.g. aug-smiling@stargan)")
        if len(set(value)) != len(value):
            raise ValueError("arms are listed twice")
        return value


def split_arm(arm: str) -> tuple[str, str | None]:
    """'aug-smiling@stargan' -> ('aug-smiling', 'stargan'); 'aug-smiling' -> ('aug-smiling', None): the run's editor."""
    base, _, editor = arm.partition("@")
    return base, editor or None


class EvaluationConfig(_Frozen):
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for confidence intervals")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    far_levels: tuple[float, ...] = (1e-3, 1e-2)
    target_seed: int = Field(0, description="seed choosing each CelebA test identity's target image")
    judge_steps: int = Field(1500, ge=1, description="training steps of the independent attribute classifier that judges edits")
    judge_batch_size: int = Field(64, ge=2)
    judge_seed: int = Field(0, description="seed of the judge's training (one judge per run, whatever the editors' seeds)")
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="attention-mask threshold for IoU with the true region")
    max_eval_images: int = Field(512, ge=1, description="held-out test images per attribute used to score an editor")
    protocols: tuple[str, ...] = Field(("celeba", "lfw", "celeba-cross", "lfw-cross"),
                                       description="registered evaluation protocols (recognition/protocols/), each scored for "
                                                   "every arm and seed")
    cross_impostors: int = Field(100_000, ge=10, description="impostor pairs per cross-attribute split (sampled, seeded)")
    power: float = Field(0.8, gt=0, lt=1, description="power at which the minimal detectable difference is stated")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="test embeddings: auto = bf16 autocast on a GPU, fp32 on a CPU; bf16 autocast embeds 2x faster "
                            "on CPUs with AVX-512 BF16 (benchmarks/verifier_speed.py --embed-precision), where embedding "
                            "CelebA-sized test sets costs as much as training")


class EngineConfig(_Frozen):
    """Where the Prefect flow runs its fan-out stages (editors, augmentation shards, verifier arms x seeds).
    It changes where work runs, never what it computes, so no result's key includes it."""

    task_runner: Literal["threads", "dask"] = Field("threads", description="threads: this machine; dask: a Dask cluster")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask cluster (tcp://host:8786); None starts a local one")
    dask_workers: int = Field(2, ge=1, description="worker processes of the local Dask cluster (one task each)")


class RunConfig(_Frozen):
    profile: str = "custom"
    seed: int = 0
    output_dir: Path = Path("data/runs/custom")
    workers: int = Field(0, ge=0, description="processes for parallel stages; 0 = number of CPU cores")
    data: DataConfig = DataConfig()
    editor: EditorConfig = EditorConfig()
    verifier: VerifierConfig = VerifierConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    engine: EngineConfig = EngineConfig()

    def editor_plan(self) -> dict[str, list[str]]:
        """Every editor the run trains and the attributes it edits: the configured editor for all of
        `editor.attributes`, then each editor an `aug-...@<editor>` arm names, for that arm's attributes."""
        plan = {self.editor.name: list(self.editor.attributes)}
        for arm in self.verifier.arms:
            base, editor = split_arm(arm)
            if editor and editor != self.editor.name:
                wanted = list(self.editor.attributes) if base == "aug-all" else [base.removeprefix("aug-")]
                plan[editor] = list(dict.fromkeys(plan.get(editor, []) + wanted))
        return plan

    def for_editor(self, name: str) -> "RunConfig":
        """This config with another editor (same data, budget, widths and loss weights)."""
        return self.model_copy(update={"editor": self.editor.model_copy(update={"name": name})})

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self, directory: str | Path) -> Path:
        """Write the resolved config beside an output (`config.json`)."""
        path = Path(directory) / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)
        return path


def profile_dict(name: str) -> dict[str, Any]:
    """The raw mapping of a named profile."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    text = resources.files("pipeline.profiles").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def parse_overrides(overrides: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """`["a.b=1", "c=[x, y]"]` or a nested mapping -> a nested dict. Values are parsed as YAML."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return _nest(dict(overrides))
    flat: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        flat[key.strip()] = _yaml_value(key.strip(), raw) if raw.strip() else ""
    return _nest(flat)


def _yaml_value(key: str, raw: str) -> Any:
    """An override's value parsed with yaml.safe_load (which never runs code); errors name the key."""
    try:
        # An alias (*name) can repeat a structure exponentially ("billion laughs"); a --set value never needs one.
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(raw)):
            raise ConfigError(f"override '{key}': the value {raw!r:.80} uses a YAML alias (*name); write the value out in full")
        return yaml.safe_load(raw)
    except ConfigError:
        raise
    except yaml.constructor.ConstructorError as exc:  # a tag such as !!python/object/apply:..., refused by safe_load
        tag = f" {exc.problem.split('tag ')[-1]}" if exc.problem and "tag " in exc.problem else ""
        raise ConfigError(f"override '{key}': the value {raw!r:.80} uses a YAML tag{tag} that is not allowed; "
                          "give a plain value (number, string, list or mapping)") from None
    except yaml.YAMLError as exc:
        why = " ".join(str(exc).split())
        raise ConfigError(f"override '{key}': the value {raw!r:.80} is not valid YAML ({why})") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a date that does not exist: 2001-02-30
        raise ConfigError(f"override '{key}': the value {raw!r:.80} cannot be read ({type(exc).__name__}: {exc})") from None


def load_config(
    profile: str = "demo",
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> RunConfig:
    """Profile + overrides -> a validated RunConfig; errors name the offending keys."""
    merged = _deep_merge(profile_dict(profile), parse_overrides(overrides))
    merged.setdefault("profile", profile)
    merged.setdefault("output_dir", f"data/runs/{profile}")
    return validate_config(merged)


def validate_config(data: Mapping[str, Any]) -> RunConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid run config: expected a mapping of keys to values, found {type(data).__name__}")
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def read_config(path: str | Path) -> RunConfig:
    """Load a saved `config.json` (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if path.exists() and not path.is_file():  # a FIFO would block the read
        raise ConfigError(f"{path}: not a regular file")
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no saved config there") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return validate_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"config key '{key}': unknown key")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"config key '{key}': {err['msg']}{shown}")
    return "invalid run config:\n  " + "\n  ".join(lines)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if not isinstance(key, str):  # a YAML mapping value may have keys such as 1 or true
            raise ConfigError(f"config key {key!r} is not a string")
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r} conflicts with a value set for {part!r}")
            node = child
        if isinstance(value, Mapping):
            value = _nest(dict(value))
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
