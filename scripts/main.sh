#!/usr/bin/env bash
# Set up everything and run the main job on the embedded default through Prefect:
# starts a local Prefect server (SQLite under data/prefect, analytics off, no network), serves the
# `augment-and-verify/local` deployment from this repository, runs
#   prefect deployment run augment-and-verify/local --param profile=demo --watch
# shows the flow's progress (stages, training progress) as it runs, prints where the report is, and shuts
# down what it started.
#   bash scripts/main.sh                                   # demo profile, ~8 minutes on 2 CPU cores
#   bash scripts/main.sh --profile evidence                # hours on a CPU, minutes on a GPU
#   bash scripts/main.sh --profile demo --overrides '{"verifier.seeds": [0, 1]}'
#   KEEP_SERVER=1 bash scripts/main.sh                     # leave the UI up at http://127.0.0.1:4200
# Interrupted? Run it again: finished editors, shards and verifiers are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PROFILE=demo
OVERRIDES='{}'
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --overrides) OVERRIDES=$2; shift 2 ;;
    *) echo "unknown argument $1 (use --profile NAME, --overrides JSON)" >&2; exit 2 ;;
  esac
done

PORT=${PREFECT_PORT:-4200}
mkdir -p data/prefect
export PREFECT_HOME="$PWD/data/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_API_DATABASE_CONNECTION_URL="sqlite+aiosqlite:///$PWD/data/prefect/prefect.db"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PREFECT_UI_ENABLED=true PYTHONUNBUFFERED=1

PIDS=()
cleanup() {
  if [ -z "${KEEP_SERVER:-}" ]; then
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "starting a local Prefect server on 127.0.0.1:$PORT (log: data/prefect/server.log)"
.venv/bin/prefect server start --host 127.0.0.1 --port "$PORT" > data/prefect/server.log 2>&1 &
PIDS+=($!)
healthy() { .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$PREFECT_API_URL/health" 2>/dev/null; }
for _ in $(seq 180); do healthy && break; sleep 1; done
healthy || { echo "the Prefect server did not start; see data/prefect/server.log" >&2; exit 1; }

echo "serving augment-and-verify/local (log: data/prefect/serve.log)"
.venv/bin/python -m flows.serve > data/prefect/serve.log 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do
  .venv/bin/prefect deployment inspect augment-and-verify/local > /dev/null 2>&1 && break
  sleep 1
done

# Progress where the user is looking: the flow's log (each stage starting and finishing, every editor's and
# verifier's progress lines, relayed from their worker processes) shown here while the run is watched.
tail -n 0 -F data/prefect/serve.log 2>/dev/null > >(grep --line-buffered -E "\| (INFO|WARNING|ERROR|CRITICAL) +\|") &
PIDS+=($!)  # tail's own pid: stopping it ends the grep
.venv/bin/prefect deployment run augment-and-verify/local --param profile="$PROFILE" \
  --params "{\"overrides\": $OVERRIDES}" --watch
OUT=$(.venv/bin/python -c 'import json, sys; from pipeline.config import load_config; print(load_config(sys.argv[1], json.loads(sys.argv[2])).output_dir.resolve())' "$PROFILE" "$OVERRIDES")
.venv/bin/faceaug shards verify "$OUT/shards"
echo "report: $OUT/report.html"
if [ -n "${KEEP_SERVER:-}" ]; then
  echo "Prefect UI: http://127.0.0.1:$PORT (press Ctrl-C to stop)"
  wait
fi
