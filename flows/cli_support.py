"""What every `faceaug` command shares: the --profile / --set help, loading the config, and turning a stage's
bad-input errors into a one-line message (exit status 2) instead of a traceback."""

from __future__ import annotations

import sys

import click

PROFILE_HELP = "named profile: tiny (tests), demo (default, <=30 min on 2 CPU cores), evidence, paper (real CelebA/LFW, GPU)"
SET_HELP = "override a config key, e.g. --set data.image_size=48 (repeatable; values are YAML)"


def _config(profile: str, overrides: tuple[str, ...]):
    from flows.stages import check_config
    from pipeline.config import ConfigError, load_config

    try:
        return check_config(load_config(profile, list(overrides)))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _fail(exc: Exception) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def _run(stage, *args, **kwargs):
    """Call a stage; the errors stages raise for bad input or missing work end the command with their
    message (exit status 2) instead of a traceback."""
    try:
        return stage(*args, **kwargs)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        _fail(exc)


def _live():
    """Progress of a long command: live bars on a terminal, plain lines otherwise (flows/progress.py)."""
    from flows.progress import TerminalProgress

    return TerminalProgress(sys.stdout)
