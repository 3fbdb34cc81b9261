"""Shared fixtures: the real config shrunk to the `tiny` profile, in a temporary run directory."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture
def tiny_config(tmp_path, monkeypatch):
    """The `tiny` profile with its outputs (and the synthetic benchmark) under tmp_path."""
    from pipeline.config import load_config

    monkeypatch.chdir(tmp_path)  # data/synthetic/... and data/runs/... land in tmp_path
    return load_config("tiny", {"output_dir": str(tmp_path / "run"), "workers": 2})
