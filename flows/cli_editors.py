"""`faceaug editors ...`: list, train, evaluate, score against the targets, probe and compare face editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.cli_support import PROFILE_HELP, SET_HELP, _config, _live, _run


@click.group()
def editors() -> None:
    """Face editors: list, train, evaluate, quality, probe, compare."""


@editors.command("list")
def editors_list():
    """The registered editors (entry-point group `faceaug.editors`) and any that failed to load."""
    from editing.registry import available, failures

    for name, plugin in available().items():
        trainable = "trainable" if plugin.trainer else "no training"
        click.echo(f"{name:12s} {plugin.description}  [{plugin.distribution or '?'}; {trainable}]")
    for name, why in failures().items():
        click.secho(f"{name:12s} FAILED TO LOAD: {why}", fg="red")


@editors.command("train")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--editor", default=None, help="registered editor name (default: the config's editor.name)")
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) to train (default: the config's editor.attributes)")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available)")
def editors_train(profile, overrides, editor, attributes, device):
    """Train editors on <run>/shards/originals; re-running resumes from the last checkpoint."""
    from editing.train import train_editor, training_units

    extra = list(overrides) + ([f"editor.name={editor}"] if editor else [])
    cfg = _config(profile, tuple(extra))
    for attribute in attributes or training_units(cfg):  # a multi-attribute editor trains once, as 'all'
        out = _run(train_editor, cfg, attribute, device=device, progress=_live())
        click.echo(f"{attribute}: {out}")


@editors.command("evaluate")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--editor", default=None, help="registered editor name (default: the config's editor.name)")
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) to score (default: the config's editor.attributes)")
@click.option("--editor-dir", default=None, type=click.Path(), help="a trained editor's directory (default: the run's)")
def editors_evaluate(profile, overrides, editor, attributes, editor_dir):
    """Score trained editors on held-out test identities; writes evaluation.json + evaluation.png beside each."""
    from editing.evaluate import evaluate_stage

    cfg = _config(profile, overrides)
    for attribute in attributes or cfg.editor.attributes:
        result = _run(evaluate_stage, cfg, attribute, editor_name=editor, editor_directory=editor_dir, progress=_live())
        click.echo(json.dumps(result, indent=2))


@editors.command("quality")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--editor", default=None, help="registered editor name (default: the config's editor.name)")
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) (default: the config's editor.attributes)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="also write the JSON here (e.g. docs/evidence/editor_quality.json)")
def editors_quality(profile, overrides, editor, attributes, out):
    """The evaluated editors against the editor targets (both directions >= 90%, outside change <= 0.02, mask mass
    inside >= 80%, error to the true counterfactual <= half of no edit), with the checkpoint chosen and why."""
    from editing.quality import editor_quality, quality_markdown
    from pipeline.atomic import write_text_atomic

    cfg = _config(profile, overrides)
    quality = _run(editor_quality, cfg, list(attributes) or None, editor)
    click.echo(quality_markdown(quality), nl=False)
    if out:
        write_text_atomic(json.dumps(quality, indent=2) + "\n", Path(out))
        click.echo(f"written: {out}")


@editors.command("probe")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) to probe (default: the config's editor.attributes)")
@click.option("--editor-dir", default=None, type=click.Path(), help="a trained SaGAN's directory (default: the run's)")
def editors_probe(profile, overrides, attributes, editor_dir):
    """Take a trained SaGAN apart on held-out faces: its AMN output blended through its own mask, the mask
    at full strength, the true region and no mask, judged by the independent judge and by SaGAN's own
    discriminator; writes probe.json, probe.md, probe.png beside the editor."""
    from editing.sagan_probe import probe_stage, probe_table

    cfg = _config(profile, overrides)
    for attribute in attributes or cfg.editor.attributes:
        result = _run(probe_stage, cfg, attribute, editor_directory=editor_dir, progress=_live())
        click.echo(f"\n{attribute} (iteration {result['iteration']}; discriminator balanced accuracy on real test "
                   f"{result['discriminator_balanced_accuracy_on_real_test']:.3f}, judge "
                   f"{result['judge_balanced_accuracy_on_real_test']:.3f})\n{probe_table(result)}")


@editors.command("compare")
@click.option("--profile", default="demo", show_default=True, help=PROFILE_HELP)
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--editor", "names", multiple=True, help="editors to compare (repeatable; default: every registered editor)")
@click.option("--attribute", "attributes", multiple=True, help="attribute(s) (default: the config's editor.attributes)")
@click.option("--no-train", is_flag=True, help="only score editors that are already trained")
@click.option("--device", default="cpu", show_default=True)
def editors_compare(profile, overrides, names, attributes, no_train, device):
    """Train and score editors side by side on the same data and budget -> <run>/compare/<attribute>/
    (compare.json, compare.md, grid.png: the same faces edited by every editor, with residuals)."""
    from editing.compare import compare_editors
    from editing.registry import available
    from pipeline.layout import RunLayout
    from recognition.identity import baseline_embedding

    cfg = _config(profile, overrides)
    results = _run(compare_editors, cfg, list(names or available()), list(attributes) or None, train=not no_train,
                   device=device, embed=baseline_embedding(cfg, device), progress=_live())
    for attribute in results:
        click.echo((RunLayout(cfg).compare_dir(attribute) / "compare.md").read_text())
