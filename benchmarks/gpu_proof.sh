#!/usr/bin/env bash
# The one-shot proof of the GPU path on a lent NVIDIA host, and its CPU rehearsal.
#
#   benchmarks/gpu_proof.sh [OUT]              # on the GPU host; OUT defaults to $OUT
#   benchmarks/gpu_proof.sh --rehearse [OUT]   # anywhere: same steps, CPU, small sizes
#
# On an offline GPU host with Python 3.12 and CuPy but no Dask, it installs the wheels
# carried in .whl/ (../shared/gpu/fetch-wheels.sh pytest-timeout fills it), then runs, each
# step in its own time box so that a hung or failed step does not stop the others:
#   env          nvidia-smi -L, versions, the device CuPy sees
#   doctor       python -m pipeline doctor
#   tests        the gpu-marked tests (workflows first, then the ops), 60 s per test
#   workflows    spectrum and option_pricing at 4 GiB on GPU and CPU (ratio); a 2 GiB
#                spectrum read from a .npy file on GPU (1 and 2 threads per worker: must
#                be bitwise equal, else a race) and on CPU (equal within float32 rounding)
#   bandwidth    host<->device copies, pageable and pinned, and device-to-device
#   handwritten  the 4 GiB spectrum written by hand in CuPy, the pipeline's yardstick
# and leaves in OUT: summary.txt (one screen, also printed), proof.json (every figure),
# proof.log (all output), doctor.txt, tests.txt. Under 8 minutes in all. Exit 0 only when
# every step passed. docs/gpu.md says how to carry this to a lent host and records results.
set -uo pipefail
cd "$(dirname "$0")/.."

REHEARSE=""
if [ "${1:-}" = "--rehearse" ]; then REHEARSE="--rehearse"; shift; fi
OUT=${1:-${OUT:?usage: benchmarks/gpu_proof.sh [--rehearse] OUT (or set OUT)}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-proof.XXXXXX")
LOG="$OUT/proof.log"
: > "$LOG"
: > "$WORK/status"
trap 'rm -rf "$WORK"' EXIT

# Time boxes in seconds: 20+45+150+150+30+30 = 425, plus the install, under 8 minutes.
declare -A BOX=([env]=20 [doctor]=45 [tests]=150 [workflows]=150 [bandwidth]=30
                [handwritten]=30)
# a rehearsal is not short of time, and CI machines are slower
if [ -n "$REHEARSE" ]; then for s in "${!BOX[@]}"; do BOX[$s]=$((BOX[$s] * 3)); done; fi

step() {  # step NAME COMMAND...: run in NAME's time box, record status and seconds
  local name=$1; shift
  local t0 rc ms status
  t0=$(date +%s%N)
  echo "=== $name (box ${BOX[$name]} s): $*" >> "$LOG"
  timeout --kill-after=10 "${BOX[$name]}" "$@" >> "$LOG" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  echo "$name $status:$((ms / 1000)).$(( ms % 1000 / 100 ))" >> "$WORK/status"
  echo "$name: $status ($((ms / 1000)) s)"
}

if [ -z "$REHEARSE" ] && ! "$PY" -c "import dask, distributed" 2>/dev/null; then
  echo "installing the carried wheels (.whl/)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 || echo "wheel install FAILED (see proof.log)"
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  if ! "$PY" -c "from cuda.core import Device" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site-opt .whl/opt/*.whl \
      >> "$LOG" 2>&1
    export PYTHONPATH=/tmp/site-opt:$PYTHONPATH
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

TIMEOUT_ARGS=()
if "$PY" -c "import pytest_timeout" 2>/dev/null; then TIMEOUT_ARGS=(--timeout 60); fi
if [ -n "$REHEARSE" ]; then  # the GPU code path on the CuPy stand-in, a few tests
  TESTS=(-m standin tests/gpu/test_pinned.py)
else
  TESTS=(-m gpu tests/test_workflows.py tests/gpu tests/ops)
fi

step env "$PY" benchmarks/gpu_proof.py env "$WORK" $REHEARSE
step doctor bash -c "\"$PY\" -m pipeline doctor > \"$OUT/doctor.txt\" 2>&1"
step tests bash -c "\"$PY\" -m pytest -q -p no:cacheprovider ${TIMEOUT_ARGS[*]} ${TESTS[*]} \
  > \"$OUT/tests.txt\" 2>&1"
step workflows "$PY" benchmarks/gpu_proof.py workflows "$WORK" $REHEARSE \
  --budget $((BOX[workflows] - 10))
step bandwidth "$PY" benchmarks/gpu_proof.py bandwidth "$WORK" $REHEARSE
step handwritten "$PY" benchmarks/gpu_proof.py handwritten "$WORK" $REHEARSE
"$PY" benchmarks/gpu_proof.py summary "$WORK" $REHEARSE --out "$OUT" | tee -a "$LOG"
! grep -qv " ok:" "$WORK/status"
