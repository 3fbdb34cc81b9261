#!/usr/bin/env bash
# The GPU check in one command (docs/gpu-check.md):
#
#     benchmarks/gpu_check.sh OUT_DIR
#
# On a CUDA machine, within 10 minutes: the tiny profile end to end on the GPU, then the SaGAN,
# verifier, shard-loader and augmentation throughput benchmarks at the paper configuration
# (128 px, bf16, channels_last, torch.compile of the editor's generator), and one JSON,
# OUT_DIR/gpu_check.json (benchmarks/gpu_summary.py), with images/s and achieved FLOP/s against
# the GPU's measured bf16 matmul peak, the three targets met or not, and each step's wall time.
#
# Run it from anywhere (it works in the repository root). Python: $PYTHON if set, else .venv/bin/python if it exists,
# else `python` on PATH (`faceaug` is run through that same interpreter). Environment:
#   GPU_CHECK_ALLOW_CPU=1    no GPU: run the same steps on the CPU at tiny sizes (checks the plumbing,
#                            a few minutes on 2 cores; the figures mean nothing for the targets)
#   GPU_CHECK_DEADLINE=600   seconds for all the steps; each step's own time limit is cut to what is left
#   GPU_CHECK_COMPILE=0      skip torch.compile of the SaGAN generator (default: on for a GPU, off on a CPU)
#   GPU_CHECK_WORKERS=N      loader processes / codec threads (default: CPU count - 2, at least 1)
# A step that fails or runs out of time is recorded (its log is OUT_DIR/logs/STEP.log) and the
# check goes on; the summary is always written, and the exit status is 1 if any step failed.
set -euo pipefail

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    [[ $# -eq 1 ]] && exit 0 || exit 2
fi
OUT=$(realpath -m "$1")
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the packages, also for a Python without the project installed
FACEAUG=("$PY" -c 'import sys; sys.argv[0] = "faceaug"; from flows.cli import main; main()')  # `faceaug` of that Python

START=$(date +%s)
DEADLINE=${GPU_CHECK_DEADLINE:-600}
CPUS=$(nproc 2>/dev/null || echo 2)
WORKERS=${GPU_CHECK_WORKERS:-$(( CPUS > 3 ? CPUS - 2 : 1 ))}

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    DEVICE=cuda
elif [[ "${GPU_CHECK_ALLOW_CPU:-0}" == 1 ]]; then
    DEVICE=cpu
    echo "gpu_check: no CUDA device; GPU_CHECK_ALLOW_CPU=1, so a CPU dry run at tiny sizes (checks the plumbing only)"
else
    echo "gpu_check: torch.cuda.is_available() is False ($PY): no GPU to check." >&2
    echo "           Run it on a CUDA machine, or set GPU_CHECK_ALLOW_CPU=1 for a CPU dry run at tiny sizes." >&2
    exit 3
fi
mkdir -p "$OUT/logs"
rm -f "$OUT"/{peaks,sagan,verifier,shard_loader,augment,gpu_check}.json "$OUT"/logs/*.log

if [[ $DEVICE == cuda ]]; then
    COMPILE=${GPU_CHECK_COMPILE:-1}
    # paper configuration: SaGAN of Table 1/2 at 128 px, bf16; verifier ResNet-18 at 128 px, bf16, batch 256
    SAGAN=(--configs paper --precisions bf16 --iters 10 --edit-batch 1024 --edit-repeats 10)
    VERIFIER=(--sizes 128 --precision bf16 --train-batch 256 --embed-batch 1024 --repeats 10)
    LOADER=(--sizes 128 --precision bf16 --batch 256 --n 16384 --steps 40 --threads 0 --build-threads "$CPUS"
            --workers 0 "$WORKERS" --fed-workers 0 "$WORKERS" --verifier-stream)
    AUG_DATA=(--set data.image_size=128 --set data.synthetic.render_size=128 --set data.synthetic.identities=1000
              --set data.synthetic.images_per_identity=8 --set data.synthetic.fixed_count=true --set data.shard_rows=1024)
    AUG_EDITOR=(--set editor.sagan.g_conv_dim=32 --set editor.sagan.g_downsamples=3 --set editor.sagan.g_res_blocks=4
                --set editor.sagan.d_conv_dim=32 --set editor.sagan.d_layers=6)
    AUG_BATCH=1024
    LIMITS=(peaks=60 tiny=180 sagan=180 verifier=90 loader=150 aug_data=90 aug_editor=60 augment=120)
else
    COMPILE=${GPU_CHECK_COMPILE:-0}  # inductor's CPU code for these bf16 convs was 40x slower than eager here
    SAGAN=(--configs tiny --precisions bf16 --iters 2 --edit-batch 16 --edit-repeats 3 --threads 2)
    # 48 px: the cheapest verifier input (stride-2 stem; 32 px would run the stride-1 stem at full resolution)
    VERIFIER=(--sizes 48 --precision bf16 --train-batch 8 --embed-batch 32 --repeats 2 --threads 2)
    LOADER=(--sizes 48 --precision bf16 --batch 8 --n 256 --shard-rows 64 --steps 3 --threads 2 --classes 100
            --workers 0 1 --fed-workers 0 1 --verifier-stream)
    # the same keys as on the GPU, at the tiny profile's sizes
    AUG_DATA=(--set data.image_size=32 --set data.synthetic.render_size=32 --set data.synthetic.identities=24
              --set data.synthetic.images_per_identity=6 --set data.synthetic.fixed_count=true --set data.shard_rows=64)
    AUG_EDITOR=(--set editor.sagan.g_conv_dim=8 --set editor.sagan.g_downsamples=2 --set editor.sagan.g_res_blocks=1
                --set editor.sagan.d_conv_dim=8 --set editor.sagan.d_layers=3)
    AUG_BATCH=32
    LIMITS=(peaks=60 tiny=300 sagan=180 verifier=120 loader=120 aug_data=120 aug_editor=120 augment=120)
    WORKERS=${GPU_CHECK_WORKERS:-$(( CPUS < 2 ? CPUS : 2 ))}
fi
[[ $COMPILE == 1 ]] && SAGAN+=(--compile)

limit_of() { local kv; for kv in "${LIMITS[@]}"; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done; echo 60; }

FAILED=0
: >"$OUT/steps.tsv"
# step NAME CMD...: run CMD with its time limit (cut to the time left), log to OUT/logs/NAME.log,
# record "NAME rc seconds limit" in OUT/steps.tsv; a failure is recorded, not fatal.
step() {
    local name=$1; shift
    local limit left t0 t1 rc
    limit=$(limit_of "$name")
    left=$(( DEADLINE - ($(date +%s) - START) ))
    (( left < limit )) && limit=$left
    if (( limit < 5 )); then
        echo "== $name: skipped, the ${DEADLINE}s deadline is spent"
        printf '%s\t%s\t%s\t%s\n' "$name" skipped 0 0 >>"$OUT/steps.tsv"
        FAILED=1
        return 0
    fi
    echo "== $name (limit ${limit}s)"
    t0=$(date +%s.%N)
    set +e
    timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    set -e
    t1=$(date +%s.%N)
    local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$limit" >>"$OUT/steps.tsv"
    if (( rc == 0 )); then
        echo "   ok, ${secs}s"
    else
        FAILED=1
        (( rc == 124 || rc == 137 )) && echo "   TIMED OUT after ${secs}s (limit ${limit}s)" || echo "   FAILED (exit $rc) after ${secs}s"
        tail -n 15 "$OUT/logs/$name.log" | sed 's/^/   | /'
    fi
}

echo "gpu_check: device $DEVICE, python $PY, $CPUS CPUs, $WORKERS loader workers, compile $COMPILE, out $OUT"
{ echo "device=$DEVICE"; echo "python=$PY"; echo "cpus=$CPUS"; echo "workers=$WORKERS"; echo "compile=$COMPILE";
  echo "deadline=$DEADLINE"; echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo -)";
  echo "git_dirty=$(git status --porcelain 2>/dev/null | grep -c . || true)"; } >"$OUT/env.txt"
rm -rf "$OUT/tiny" "$OUT/aug128"

# a. the GPU's (or CPU's) fp32 and bf16 matmul peaks, which every fraction below is against
step peaks "$PY" benchmarks/_measure.py --device "$DEVICE" --out "$OUT/peaks.json"
# b. the tiny profile end to end (every stage picks CUDA when it is available)
step tiny "${FACEAUG[@]}" run --profile tiny --set "output_dir=$OUT/tiny"
# c. SaGAN training (3 D + 1 G updates, batch 16) and editing (the editor's `edit`, large batch)
step sagan "$PY" benchmarks/sagan_speed.py "${SAGAN[@]}" --device "$DEVICE" --out "$OUT/sagan.json"
# d. verifier training step and flip-averaged embedding
step verifier "$PY" benchmarks/verifier_speed.py "${VERIFIER[@]}" --device "$DEVICE" --out "$OUT/verifier.json"
# e. the verifier's training step fed by the shard loader vs. the bare step
step loader "$PY" benchmarks/shard_loader.py "${LOADER[@]}" --device "$DEVICE" --out "$OUT/shard_loader.json"
# f. augmentation (decode -> edit -> encode -> commit) vs. the raw edit, with a paper-width SaGAN at 128 px
#    trained for 2 iterations (its weights do not matter for speed)
step aug_data "${FACEAUG[@]}" data prepare --profile tiny --set "output_dir=$OUT/aug128" "${AUG_DATA[@]}"
step aug_editor "${FACEAUG[@]}" editors train --profile tiny --set "output_dir=$OUT/aug128" "${AUG_DATA[@]}" \
    --set editor.iterations=2 --set editor.checkpoint_every=2 --set editor.sample_every=2 "${AUG_EDITOR[@]}" \
    --attribute eyeglasses --device "$DEVICE"
step augment "$PY" benchmarks/augment_throughput.py --run "$OUT/aug128" --attribute eyeglasses --batch "$AUG_BATCH" \
    --threads "$WORKERS" --device "$DEVICE" --out "$OUT/augment.json"

# g. one JSON and a table
echo "finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$OUT/env.txt"
echo "total_seconds=$(( $(date +%s) - START ))" >>"$OUT/env.txt"
"$PY" benchmarks/gpu_summary.py "$OUT" | tee "$OUT/summary.txt"
exit $FAILED
