#!/usr/bin/env bash
# Set up everything and run the main job on the embedded default: the `demo` profile on the
# synthetic benchmark, every stage from data to report (about 25-30 minutes on 2 CPU cores).
#   bash scripts/main.sh                         # demo
#   bash scripts/main.sh --profile evidence      # hours on a CPU, minutes on a GPU
#   bash scripts/main.sh --set verifier.seeds=[0,1]
# Interrupted? Run it again: finished work is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PYTHONUNBUFFERED=1
PROFILE=demo
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
.venv/bin/faceaug run --profile "$PROFILE" "${ARGS[@]}"
.venv/bin/faceaug shards verify "data/runs/$PROFILE/shards"
echo "report: data/runs/$PROFILE/report.html"
