#!/usr/bin/env bash
# Issue #15's GPU checks, as one prepared script for a lent GPU machine. From the repository root:
#
#     bash benchmarks/gpu.sh                 # about 8 minutes at most (each step has a time limit)
#     OUT=/some/dir bash benchmarks/gpu.sh   # also write the logs and gpu-summary.txt there
#
# 1. the GPU (nvidia-smi) and the libraries found (installs what is missing, if pip can);
# 2. the registry op suite (tests/test_ops*.py, `backends` hypothesis profile) on CuPy arrays
#    and on torch CUDA tensors;
# 3. W3 (784-1024-1024-10 float32 MLP, batch 256, one SGD step): autobp on CuPy and on torch CUDA
#    against the same step in PyTorch CUDA (benchmarks/gpu_w3.py);
# 4. one epoch of the MNIST mlp (benchmarks/gpu_mnist.py) on CuPy, torch CUDA and numpy; full
#    MNIST from $MNIST_DIR (or shared/data/mnist), else the bundled 10,000-image subset.
# Then a summary: the GPU's name and one line per step, ready for docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
SUMMARY="$OUT/gpu-summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

# -- 1. the machine and the Python environment ------------------------------------------------
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
note "GPU: ${gpu:-none found (nvidia-smi failed)}"
PYTHON=${PYTHON:-python3}
INSTALL=${INSTALL:-1}  # INSTALL=0: use $PYTHON as it is (no pip)
if [ "$INSTALL" = 1 ] && ! "$PYTHON" -c "import numpy, hypothesis, pytest, array_api_compat" 2>/dev/null; then
    # A venv that still sees the system's torch/cupy, with autobp and its test extra on top.
    "$PYTHON" -m venv --system-site-packages .venv-gpu && PYTHON=.venv-gpu/bin/python
    timeout 120 "$PYTHON" -m pip install -q -e ".[test]" >"$OUT/pip.log" 2>&1 || note "pip: autobp[test] failed (see pip.log)"
fi
if [ "$INSTALL" = 1 ]; then
    "$PYTHON" -c "import cupy" 2>/dev/null || timeout 120 "$PYTHON" -m pip install -q "cupy-cuda12x>=13" >>"$OUT/pip.log" 2>&1
    "$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
        || timeout 120 "$PYTHON" -m pip install -q torch >>"$OUT/pip.log" 2>&1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # (keeps wheels carried to the machine, e.g. /tmp/site)
note "$("$PYTHON" - <<'EOF'
import numpy
parts = [f"python {__import__('sys').version.split()[0]}", f"numpy {numpy.__version__}"]
try:
    import cupy
    parts.append(f"cupy {cupy.__version__} (CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()})")
except Exception as error:
    parts.append(f"cupy missing ({type(error).__name__})")
try:
    import torch
    parts.append(f"torch {torch.__version__} (cuda available: {torch.cuda.is_available()})")
except Exception as error:
    parts.append(f"torch missing ({type(error).__name__})")
print("Libraries: " + ", ".join(parts))
EOF
)"

# -- steps: each with a time limit; its last lines go to the summary ----------------------------
step() {  # step NAME SECONDS LINES command...
    local name=$1 limit=$2 lines=$3
    shift 3
    if [[ " ${SKIP:-} " == *" $name "* ]]; then  # SKIP="ops-cupy w3": steps left out of this run
        note "== $name (left out: SKIP)"
        return
    fi
    local log="$OUT/$name.log" start=$SECONDS
    timeout "$limit" "$@" >"$log" 2>&1
    local status=$?
    local verdict="ok"
    [ $status -eq 124 ] && verdict="TIMED OUT after ${limit} s"
    [ $status -ne 0 ] && [ $status -ne 124 ] && verdict="exit $status"
    note "== $name ($verdict, $((SECONDS - start)) s)"
    tail -n "$lines" "$log" | tee -a "$SUMMARY"
}

SUITE=(tests/test_ops.py tests/test_ops_jvp.py tests/test_ops_libraries.py)
export HYPOTHESIS_PROFILE=backends
step ops-cupy 150 2 "$PYTHON" -m pytest -q -p no:cacheprovider --maxfail=20 "${SUITE[@]}" --array-library cupy
step ops-torch-cuda 150 2 "$PYTHON" -m pytest -q -p no:cacheprovider --maxfail=20 "${SUITE[@]}" \
    --array-library torch --array-device cuda
step w3 90 3 "$PYTHON" -m benchmarks.gpu_w3 --libraries cupy torch --device cuda --repeats 30

MNIST_DIR=${MNIST_DIR:-shared/data/mnist}
mnist_flags=()
[ -d "$MNIST_DIR" ] && mnist_flags=(--data "$MNIST_DIR")
step mnist 150 3 "$PYTHON" -m benchmarks.gpu_mnist --libraries cupy torch numpy --device cuda "${mnist_flags[@]}"

echo
echo "===== summary ($SUMMARY) ====="
cat "$SUMMARY"
