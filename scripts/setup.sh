#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv. Idempotent.
# Needs only Python >= 3.10 with venv and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torchvision has no CPU-only wheel on PyPI, so this pulls the CUDA build of torch
# (~5 GB the first time); it runs on a CPU-only machine too.
.venv/bin/python -m pip install -q -e '.[dev]'
