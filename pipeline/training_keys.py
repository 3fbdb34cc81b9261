"""Training keys: what determines a training run's result, saved with its checkpoints.

Every trainer (editors, the judge, the verifier) stores a key beside its checkpoint and its
finished model. Work is reused only when the key matches, and a checkpoint resumes only under the
same key; otherwise the stage stops with both keys named instead of mixing two settings in one
model. One rule keeps old runs valid when a new option is added: the option enters the key only
when it is set to something other than its default (`keyed_when_set`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def config_key(config, *, skip: set[str] = frozenset()) -> dict:
    """A pydantic config as a JSON-able dict without the fields in `skip` (those that do not change results)."""
    return {k: v for k, v in json.loads(config.model_dump_json()).items() if k not in skip}


def keyed_when_set(key: dict, added_later: Mapping[str, Any]) -> dict:
    """Remove from `key` (in place) the fields added after runs had been keyed without them, wherever they
    still hold their default: existing checkpoints then still match, and a field enters the key only once
    it is set. Returns `key`."""
    for field, default in added_later.items():
        if key.get(field) == default:
            del key[field]
    return key


class KeyMismatch(ValueError):
    """Finished or half-finished work under `path` was done with other settings."""

    def __init__(self, path: str | Path, saved: Any, wanted: Any, hint: str):
        self.path, self.saved, self.wanted = str(path), saved, wanted
        super().__init__(f"{path} was trained with {saved}; this run asks for {wanted}. {hint}")


def check_key(path: str | Path, saved: Any, wanted: Any, hint: str = "Use another output_dir, or delete it to retrain.") -> None:
    """Raise KeyMismatch unless the saved key equals the wanted one (compared as JSON)."""
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(wanted)):
        raise KeyMismatch(path, saved, wanted, hint)
