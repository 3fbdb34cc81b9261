"""`faceaug`: the command line over every stage (it sits beside the flows, on top of the three packages).

Commands import their stage lazily, so `faceaug --help` is instant and a stage's
heavy dependencies (torch, pyarrow) load only when that stage runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from flows.cli_support import PROFILE_HELP, SET_HELP, _config, _fail, _live, _run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """faceaug: does GAN face-attribute editing make a face verifier more robust?

    \b
    faceaug run --profile demo      the whole experiment, every stage below in order (resumes)

    The stages, in order (each reads what the one before wrote under the run directory):
      faceaug synth ...            render the synthetic CelebA/LFW-format benchmark
      faceaug data check ...       check a CelebA or LFW tree (real or synthetic)
      faceaug data prepare ...     render/check the sources and ingest them into Parquet shards
      faceaug shards verify DIR    check shards against their manifest
      faceaug editors list         the registered face editors (built-in and plugins)
      faceaug editors train ...    train one editor per attribute on the originals shards
      faceaug editors evaluate ... score editors: attribute success, preservation, mask quality
      faceaug editors probe ...    why a SaGAN edit fails: its AMN output through other masks, judge vs. D
      faceaug augment ...          edit every train image: original + added + removed, into shards
      faceaug verifier train ...   train the ResNet-18 verifier for every arm and seed
      faceaug evaluate ...         CelebA test identities + LFW 10-fold, intervals, paired differences
      faceaug report RUN_DIR       report.html (self-contained), report.md, report.json
      faceaug plan ...             seeds / test identities a difference would need, from a finished baseline
      faceaug config show ...      print the resolved run config of a profile + overrides

    Every stage takes --profile and --set key=value; `faceaug config show` prints what they resolve to.
    """


# ----------------------------------------------------------------------------- synth
@main.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory to write celeba/ and lfw/ into")
@click.option("--identities", default=400, show_default=True, help="CelebA-format identities")
@click.option("--images-per-identity", default=20, show_default=True, help="median images per identity (CelebA: 21)")
@click.option("--fixed-count", is_flag=True, help="give every identity exactly --images-per-identity images")
@click.option("--size", default=128, show_default=True, help="image side in px")
@click.option("--seed", default=0, show_default=True)
@click.option("--lfw-identities", default=None, type=int, help="LFW-format identities (default: half of --identities)")
@click.option("--lfw-pairs-per-fold", default=None, type=int, help="matched (= mismatched) pairs per fold (real LFW: 300)")
@click.option("--extra-test-identities", default=0, show_default=True, type=click.IntRange(0),
              help="more identities in the test partition only; every other file stays byte-identical")
@click.option("--workers", default=None, type=int, help="rendering processes (default: all cores)")
@click.option("--overwrite", is_flag=True, help="replace an existing tree in --out")
def synth(out, identities, images_per_identity, fixed_count, size, seed, lfw_identities, lfw_pairs_per_fold,
          extra_test_identities, workers, overwrite):
    """Render the synthetic face benchmark in CelebA and LFW file formats.

    Writes OUT/celeba (img_align_celeba/, list_attr_celeba.txt, identity_CelebA.txt,
    list_eval_partition.txt, attribute_regions/) and OUT/lfw (lfw/<Name>/, pairs*.txt).
    """
    from pipeline.synth import render_benchmark

    try:
        summary = render_benchmark(
            out, identities=identities, images_per_identity=images_per_identity, size=size, seed=seed,
            lfw_identities=lfw_identities, lfw_pairs_per_fold=lfw_pairs_per_fold, fixed_count=fixed_count,
            extra_test_identities=extra_test_identities, workers=workers, overwrite=overwrite, progress=_progress_bar(),
        )
    except (ValueError, FileExistsError) as exc:
        _fail(exc)
    click.echo(json.dumps(summary, indent=2))


def _progress_bar():
    state = {"last": -1}

    def show(done: int, total: int) -> None:
        pct = int(100 * done / max(total, 1))
        if pct != state["last"]:
            state["last"] = pct
            click.echo(f"\r  rendered {done}/{total} ({pct}%)", nl=done >= total, err=True)

    return show


# ----------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Check dataset trees and ingest them into shards."""


@data.command("check")
@click.option("--celeba", "celeba_dir", type=click.Path(), help="root of a CelebA tree")
@click.option("--lfw", "lfw_dir", type=click.Path(), help="root of an LFW tree")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary")
@click.option("--decode", is_flag=True, help="also decode every image (finds corrupt files; slower)")
@click.option("--test-identities", default=2000, show_default=True, help="test identities of the paper split")
def data_check(celeba_dir, lfw_dir, as_json, decode, test_identities):
    """Summarise a CelebA and/or LFW tree and list every problem found.

    Exits 1 when problems were found, so it can gate a pipeline.
    """
    from pipeline.datacheck import check_celeba, check_lfw, format_summary

    if not celeba_dir and not lfw_dir:
        raise click.UsageError("give --celeba DIR and/or --lfw DIR")
    summaries = {}
    if celeba_dir:
        summaries["celeba"] = check_celeba(celeba_dir, decode=decode, test_identities=test_identities)
    if lfw_dir:
        summaries["lfw"] = check_lfw(lfw_dir, decode=decode)
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    else:
        click.echo("\n\n".join(format_summary(s) for s in summaries.values()))
    if any(s.get("problems") for s in summaries.values()):
        sys.exit(1)


@data.command("prepare")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def data_prepare(profile, overrides):
    """Render (synthetic) or check (real) the sources and ingest them into <run>/shards/."""
    from pipeline.errors import DatasetError
    from pipeline.images import BadImageError
    from pipeline.ingest import prepare_data

    cfg = _config(profile, overrides)
    try:
        summary = prepare_data(cfg, progress=_live())
    except (DatasetError, BadImageError, ValueError, FileExistsError) as exc:
        _fail(exc)
    click.echo(json.dumps(summary, indent=2))
    from pipeline.layout import RunLayout

    click.echo(f"shards written under {RunLayout(cfg).shards('')}; skipped images: {summary['skipped_images']}")


# ----------------------------------------------------------------------------- shards
@main.group()
def shards() -> None:
    """Inspect Parquet shard datasets."""


@shards.command("verify")
@click.argument("directory")
@click.option("--json", "as_json", is_flag=True)
def shards_verify(directory, as_json):
    """Check every shard in DIRECTORY (or in each dataset under it) against its manifest entry.

    Exits 1 on any mismatch, orphan, duplicate sample id, missing _manifest/ or a manifest.json that
    disagrees with the entries; 2 when DIRECTORY does not exist or holds no shard dataset.
    """
    from pipeline.shard_verify import find_datasets
    from pipeline.shards import ShardStore

    try:
        stores = find_datasets(directory)
    except (FileNotFoundError, NotADirectoryError) as exc:
        _fail(exc)
    if not stores:
        _fail(ValueError(f"{directory}: no shard dataset (no _manifest/, manifest.json or .parquet files) here or one level below"))
    results = {path: ShardStore(path).verify() for path in stores}
    if as_json:
        click.echo(json.dumps({k: {"ok": r.ok, "shards": r.shards, "rows": r.rows, "problems": r.problems,
                                   "orphans": r.orphans} for k, r in results.items()}, indent=2))
    else:
        for path, report in results.items():
            click.echo(report.format())
    sys.exit(0 if all(r.ok for r in results.values()) else 1)


# ----------------------------------------------------------------------------- editors
from flows.cli_editors import editors  # noqa: E402 (the group lives in its own module)

main.add_command(editors)


# ----------------------------------------------------------------------------- augment
@main.command()
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) to augment (default: the config's editor.attributes)")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available)")
def augment(profile, overrides, attributes, device):
    """Run each attribute's trained editor over the train originals -> <run>/shards/aug-<attribute>/.

    Re-running skips finished shards; an interrupted run resumes with no row duplicated or lost.
    """
    from editing.augment import augment_stage

    cfg = _config(profile, overrides)
    for attribute in attributes or cfg.editor.attributes:
        summary = _run(augment_stage, cfg, attribute, device=device, progress=_live())
        click.echo(json.dumps(summary, indent=2))


# ----------------------------------------------------------------------------- verifier
@main.group()
def verifier() -> None:
    """The face verifier (ResNet-18, margin softmax)."""


@verifier.command("train")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--arm", "arms", multiple=True, help="arm(s) to train (default: verifier.arms)")
@click.option("--seed", "seeds", multiple=True, type=int, help="seed(s) (default: verifier.seeds)")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available)")
def verifier_train(profile, overrides, arms, seeds, device):
    """Train one verifier per arm and seed; equal optimiser steps across arms by default. Re-running resumes."""
    from recognition.experiment import train_arm

    cfg = _config(profile, overrides)
    for arm in arms or cfg.verifier.arms:
        for seed in seeds or cfg.verifier.seeds:
            out = _run(train_arm, cfg, arm, seed, device=device, progress=_live())
            click.echo(f"{arm}/seed-{seed}: {out}")


@main.command()
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available)")
def evaluate(profile, overrides, device):
    """Score every trained arm on every protocol; compare edits with their no-edit control -> <run>/results.json."""
    from recognition.evaluation import evaluate_run

    cfg = _config(profile, overrides)
    results = _run(evaluate_run, cfg, device=device, progress=_live())
    from recognition.report import summary_lines

    for line in summary_lines({"results": results, "config": json.loads(cfg.to_json())}):
        click.echo(f"- {line}")
    from pipeline.layout import RunLayout

    click.echo(f"results: {RunLayout(cfg).results}")


@main.command()
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--difference", type=float, required=True, help="the smallest difference you want to detect, e.g. 0.005 (AUC)")
@click.option("--metric", default="auc", show_default=True, help="auc, eer or tar@far=<level>")
@click.option("--pair-set", "pair_sets", multiple=True, help="protocol pair set(s), e.g. celeba-cross/eyeglasses/differ (default: all)")
@click.option("--compare", nargs=2, metavar="ARM REFERENCE", default=None,
              help="plan from this finished comparison's same-seed differences (e.g. aug-no_beard@counterfactual "
                   "aug-no_beard@identity) instead of the baseline's seeds paired against each other")
@click.option("--seeds", type=click.IntRange(2), default=None, help="the design's seeds (default: the run's)")
@click.option("--identities", type=click.IntRange(2), default=None, help="the design's test identities (default: the run's)")
def plan(profile, overrides, difference, metric, pair_sets, compare, seeds, identities):
    """How many seeds or test identities would detect a difference, from a finished run (>= 2 seeds).

    By default the baseline's seeds paired against each other are the comparison with no true difference:
    their spread is the training noise, the identity bootstrap the test-set noise. --compare reads the noise
    from a finished comparison of the kind planned instead: arms that share a seed differ less than two
    baseline seeds, so this is the better guide once a pilot exists (recognition/intervals.py)."""
    from recognition.evaluation import plan as make_plan

    cfg = _config(profile, overrides)
    rows = _run(make_plan, cfg, difference, metric, list(pair_sets) or None, compare=tuple(compare) if compare else None,
                seeds=seeds, identities=identities, progress=lambda m: None)
    if not rows:
        _fail(ValueError(f"no pair set matched {list(pair_sets)}"))
    source = rows[0]["source"] + (f" ({compare[0]} vs {compare[1]})" if compare else "")
    run_s = "the run's"
    click.echo(f"noise from: {source}; the design: {seeds or run_s} seeds, {identities or run_s} identities")
    click.echo(f"| pair set | {metric} detectable now ({cfg.evaluation.power:.0%} power) | identities / seeds now | "
               f"detectable with the design | seeds for {difference:g} | identities for {difference:g} |")
    click.echo("|---|---|---|---|---|---|")
    for r in rows:
        need_seeds = r["seeds_needed"] if r["seeds_needed"] is not None else "more than 1000 (test-set noise alone is too large)"
        need_ids = r["identities_needed"] if r["identities_needed"] is not None else "no number (the seeds' noise alone is too large)"
        click.echo(f"| {r['pair_set']} | ±{r['mdd_now']:.4f} | {r['identities']} / {r['seeds']} | ±{r['mdd_design']:.4f} "
                   f"({r['design_seeds']} x {r['design_identities']}) | {need_seeds} | {need_ids} |")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir):
    """Write RUN_DIR/report.html (opens offline, images embedded), report.md and report.json."""
    from recognition.report import write_report

    try:
        write_report(run_dir)
    except FileNotFoundError as exc:
        _fail(exc)
    click.echo(f"report: {Path(run_dir) / 'report.html'}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="also write the merged table (.parquet or .csv), with a `run` column")
@click.option("--metric", default="auc", show_default=True, help="the metric the printed tables show")
def results(run_dirs, out, metric):
    """Print each run's results (arms on the standard protocols, differences from the no-edit control) from
    RUN_DIR/results.parquet; with --out, merge the runs' tidy tables into one file (docs/results-schema.md)."""
    from recognition.results import print_results

    try:
        print_results(run_dirs, out=out, metric=metric)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    if out:
        click.echo(f"merged: {out}")


@main.command()
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def run(profile, overrides):
    """Run every stage: data, editors, editor scores, augmentation, verifiers, evaluation, report.

    Finished work is reused, so re-running after an interruption continues where it stopped.
    """
    from flows.run import run_all

    cfg = _config(profile, overrides)
    out = _run(run_all, cfg, progress=_live())
    click.echo(json.dumps(out["timings"], indent=2))
    click.echo(f"report: {out['report']}")


# ----------------------------------------------------------------------------- config
@main.group()
def config() -> None:
    """Show run configurations."""


@config.command("show")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def config_show(profile, overrides):
    """Print the resolved run config (profile + overrides) as JSON."""
    click.echo(_config(profile, overrides).to_json())


if __name__ == "__main__":
    main()
