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
#   tests        the gpu-marked op, kernel and GPU-plumbing tests, 60 s per test
#   wftests      the gpu-marked whole-workflow tests (GPU run vs CPU run)
#   workflows    a 2 GiB spectrum read from a .npy file on GPU (1 and 2 threads per
#                worker: must be bitwise equal, else a race) and on CPU (equal within
#                float32 rounding); spectrum and option_pricing at 4 GiB on GPU and CPU
#   bandwidth    host<->device copies, pageable and pinned, and device-to-device
#   handwritten  the 4 GiB spectrum written by hand in CuPy, the pipeline's yardstick
#   semantics    where CuPy's values differ from NumPy's at inf, NaN and zeros
# and leaves in OUT: summary.txt (one screen, also printed), proof.json (every figure),
# proof.log (all output), doctor.txt, tests.txt, wftests.txt. Under 8 minutes in all
# (a step ends early when done). Exit 0 only when every step passed. docs/gpu.md says how
# to carry this to a lent host and records results.
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

# Time boxes in seconds: 20+30+100+80+150+25+30+20 = 455, plus the install, under 8 minutes.
declare -A BOX=([env]=20 [doctor]=30 [tests]=100 [wftests]=80 [workflows]=150
                [bandwidth]=25 [handwritten]=30 [semantics]=20)
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

# one line per test as it ends (-v), so a step cut by its box still says what ran;
# failures' tracebacks at the end (--tb=short); in parallel where pytest-xdist is there
# (pytest-benchmark, where installed, warns under xdist: an error with -W error)
PYTEST=(-m pytest -v -p no:cacheprovider --tb=short -rfE)
if "$PY" -c "import pytest_benchmark" 2>/dev/null; then PYTEST+=(-p no:benchmark); fi
if "$PY" -c "import pytest_timeout" 2>/dev/null; then PYTEST+=(--timeout 60); fi
XDIST=""
if "$PY" -c "import xdist" 2>/dev/null; then XDIST=yes; fi
if [ -n "$REHEARSE" ]; then  # the GPU code path on the CuPy stand-in, a few tests
  TESTS=(-m standin tests/gpu/test_pinned.py)
  WFTESTS=(-m standin tests/test_workflows.py -k spectrum)
else
  TESTS=(-m gpu tests/ops tests/gpu tests/test_kernels.py ${XDIST:+-n 8})
  WFTESTS=(-m gpu tests/test_workflows.py ${XDIST:+-n 4})
fi

step env "$PY" benchmarks/gpu_proof.py env "$WORK" $REHEARSE
step doctor bash -c "\"$PY\" -m pipeline doctor > \"$OUT/doctor.txt\" 2>&1"
step tests bash -c "\"$PY\" ${PYTEST[*]} ${TESTS[*]} > \"$OUT/tests.txt\" 2>&1"
step wftests bash -c "\"$PY\" ${PYTEST[*]} ${WFTESTS[*]} > \"$OUT/wftests.txt\" 2>&1"
step workflows "$PY" benchmarks/gpu_proof.py workflows "$WORK" $REHEARSE \
  --budget $((BOX[workflows] - 10))
step bandwidth "$PY" benchmarks/gpu_proof.py bandwidth "$WORK" $REHEARSE
step handwritten "$PY" benchmarks/gpu_proof.py handwritten "$WORK" $REHEARSE
step semantics "$PY" benchmarks/gpu_proof.py semantics "$WORK" $REHEARSE
"$PY" benchmarks/gpu_proof.py summary "$WORK" $REHEARSE --out "$OUT" | tee -a "$LOG"
! grep -qv " ok:" "$WORK/status"
