#!/usr/bin/env bash
# Set up everything and run the test suite (the `tiny` profile; ~10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q "$@"
