"""Writing a file so that a reader never sees half of it: write beside it, then rename over it.

A process killed mid-write leaves either the old file or the new one, plus at worst a `*.tmp`
beside it that the next write replaces. Used for every small result file (JSON), checkpoint and
model a stage writes; shard datasets have their own commit protocol (`pipeline.shards`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def fsync_dir(path: str | Path) -> None:
    """Make a rename in folder `path` durable on local POSIX filesystems (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(text: str, path: str | Path) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), path)


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """`obj` as indented JSON plus a newline."""
    return write_text_atomic(json.dumps(obj, indent=2) + "\n", path)


def save_torch_atomic(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj)` to `path`, atomically (checkpoints and weights)."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def read_json(path: str | Path, default: Any = None) -> Any:
    """A JSON file's contents, or `default` when it does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default
