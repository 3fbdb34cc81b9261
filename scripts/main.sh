#!/usr/bin/env bash
# Set up everything and run the main job on the embedded default (the `demo` profile:
# synthetic benchmark). Extra arguments are passed on as --set overrides' values, e.g.
#   bash scripts/main.sh --profile evidence
# The Prefect `augment-and-verify` deployment replaces these steps once the flow exists;
# until then this runs every stage that exists.
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
.venv/bin/faceaug data prepare --profile "$PROFILE" "${ARGS[@]}"
.venv/bin/faceaug shards verify "data/runs/$PROFILE/shards"
echo "run directory: data/runs/$PROFILE"
