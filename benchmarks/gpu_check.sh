#!/usr/bin/env bash
# One device call on a lent GPU machine (JAX, no TensorFlow, no internet): install the carried
# wheels, time the train step three ways (benchmarks/throughput.py), then run a fine-tuning
# stage of the series (or the whole series) headless on Herlev through `cellclf run`. Results
# land in $OUT.
#
# Prepare here:  bash ../shared/gpu/carry-wheels.sh .whl ImageHash
#                mkdir -p .gpu-carry && cp -r ../shared/data/herlev .gpu-carry/   (never committed)
#                .venv/bin/cellclf data split ../shared/data/herlev .gpu-carry/herlev-split --test-fraction 0.2
#                  (for `full`: a held-out test/ so pseudo-labelling (06) has images to label)
# Then run it with carry [".whl", ".gpu-carry"]: `bash benchmarks/gpu_check.sh [all|bench|series|full]`
# (all = bench + series; epoch = benchmarks/epoch_overhead.py at a fold's size; full = the whole series in the full profile, resumable: a second call on
# the still-warm machine continues where the first one's time limit stopped it). Knobs: BENCH_ARGS,
# BENCH_MODELS (default "xception@299 vgg16@224 inception_resnet_v2@299"), BENCH_VARIANTS (default "project naive"; add "streamed" for host-fed batches instead of resident images, "stage" for the fine-tuning stage's own model, "mixed" for it with MixUp/CutMix, "head" for it with the base frozen (a head warm-up epoch), "predict" for forward-only speed), SERIES_ARGS, TIMM_S, BENCH_S (per model), SERIES_S, FULL_ARGS, FULL_S,
# FULL_DATA (default .gpu-carry/herlev-split, else .gpu-carry/herlev), FULL_SPEEDS (a throughput.py CSV
# for the plan-vs-run table; default docs/speeds/h100-2026-11-27.csv), EPOCH_MODELS, EPOCH_ARGS, EPOCH_S,
# PY (python to use), SKIP_INSTALL=1 (a machine that already has the packages), CELLCLF_RUNS (run folders;
# default runs/). tests/e2e/test_gpu_check.py rehearses `full`, `bench` and `epoch` on a CPU under JAX.
set -uo pipefail
PART=${1:-all}
case "$PART" in all|bench|series|full|epoch) ;; *) echo "usage: gpu_check.sh [all|bench|series|full|epoch]"; exit 2;; esac
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
PY=${PY:-python3}
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
  $PY -m ipykernel install --prefix /tmp/jk --name cellclf >/dev/null && export JUPYTER_PATH=/tmp/jk/share/jupyter
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
# JAX takes 75% of the card at start otherwise, and timm/torch shares the card in this script
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export CELLCLF_COMPILE_CACHE=${CELLCLF_COMPILE_CACHE:-/tmp/xla-cache}
RUNS=${CELLCLF_RUNS:-runs}  # where `cellclf run` puts its run folders (tests point it elsewhere)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt"
$PY -c "import jax, keras, sys; print('python', sys.version.split()[0], 'jax', jax.__version__, 'keras', keras.__version__, jax.devices())" | tee -a "$OUT/device.txt"

quiet() { grep -v -e '^I0000' -e '^W0000' -e '^WARNING: All log' -e 'absl::InitializeLog' -e 'Autotune' -e '^E0000'; }
if [ "$PART" = all ] || [ "$PART" = bench ]; then
t0=$(date +%s)
# timm/torch in its own process first, so the two frameworks never hold the card together
MODELS=${BENCH_MODELS:-xception@299 vgg16@224 inception_resnet_v2@299}
timeout "${TIMM_S:-100}" $PY benchmarks/throughput.py --models $MODELS --variants timm --csv "$OUT/throughput.csv" ${BENCH_ARGS:-} 2>&1 | quiet
# one process per model: JAX's peak-memory figure cannot be reset, so each model starts afresh
for m in $MODELS; do
  timeout "${BENCH_S:-140}" $PY benchmarks/throughput.py --models "$m" --variants ${BENCH_VARIANTS:-project naive} --csv "$OUT/throughput.csv" ${BENCH_ARGS:-} 2>&1 | quiet
done
echo "benchmark wall: $(( $(date +%s) - t0 )) s"
fi

if [ "$PART" = epoch ]; then
# a stage epoch beyond its steps (validation scoring, best-weights copy) at a Herlev fold's size
timeout "${EPOCH_S:-420}" $PY benchmarks/epoch_overhead.py --models ${EPOCH_MODELS:-baseline@128 xception@299 inception_resnet_v2@299} \
  --train 576 --val 160 --batch-size 32 ${EPOCH_ARGS:-} 2>&1 | quiet | tee "$OUT/epoch_overhead.md"
fi

if [ "$PART" = all ] || [ "$PART" = series ]; then
t1=$(date +%s)
timeout "${SERIES_S:-200}" $PY -m cellclf_utils.cli run --profile full --only 03 --data .gpu-carry/herlev \
  --classes herlev3 --run-id gpu-03 --log-output -p weights none ${SERIES_ARGS:-} 2>&1 | quiet \
  | grep -v -e '^Epoch ' -e 'step - ' | tail -40
echo "series wall: $(( $(date +%s) - t1 )) s"
for f in "$RUNS"/gpu-03/03_xception/fold*/done.json; do echo "$f: $(cat "$f")"; done 2>/dev/null
tar czf "$OUT/gpu-03.tgz" --exclude='*.weights.h5' -C "$RUNS" gpu-03 2>/dev/null
fi
if [ "$PART" = full ]; then
# weights none: the device has no internet for ImageNet weights; the time per step is the same
FULL_DATA=${FULL_DATA:-$( [ -d .gpu-carry/herlev-split ] && echo .gpu-carry/herlev-split || echo .gpu-carry/herlev )}
echo "full series on $FULL_DATA"
# what the run will push through each network, counted before it starts (cellclf plan)
$PY -m cellclf_utils.cli plan --profile full --data "$FULL_DATA" --classes herlev3 -p weights none ${FULL_ARGS:-} 2>&1 \
  | quiet | tee "$OUT/plan.txt"
t2=$(date +%s)
timeout "${FULL_S:-540}" $PY -m cellclf_utils.cli run --profile full --data "$FULL_DATA" --classes herlev3 \
  --run-id gpu-full --resume --log-output --no-progress-bar -p weights none ${FULL_ARGS:-} 2>&1 | quiet \
  | grep -v -e '^Epoch ' -e 'step - ' | grep -e '^run ' -e '^\[[0-9]' -e '^fold [0-9]' -e 'finished' -e 'Error' -e 'rror:' | tail -60
echo "full series, this call: $(( $(date +%s) - t2 )) s"
# the plan beside what the run recorded so far: epochs, fold seconds, each stage's wall time
# (metrics.json), at the H100 speeds measured earlier unless FULL_SPEEDS names other ones
$PY -m cellclf_utils.cli plan --profile full --data "$FULL_DATA" --classes herlev3 -p weights none ${FULL_ARGS:-} \
  --speeds "${FULL_SPEEDS:-docs/speeds/h100-2026-11-27.csv}" --against "$RUNS/gpu-full" 2>&1 | quiet | tee "$OUT/plan_vs_run.txt"
tar czf "$OUT/gpu-full.tgz" --exclude='*.weights.h5' --exclude='*.npz' -C "$RUNS" gpu-full 2>/dev/null
fi
[ -f "$OUT/throughput.csv" ] && { echo; $PY benchmarks/throughput.py --table "$OUT/throughput.csv"; }
exit 0
