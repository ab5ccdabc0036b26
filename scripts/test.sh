#!/usr/bin/env bash
# Set up the project's virtual environment (first run only) and run the whole
# test suite: once normally, then the CUDA tests again under Numba's CUDA
# simulator, then the GPU check's simulator smoke run.  Extra arguments go to
# both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
# torch is only a test dependency here; 2.13.0 is the CPU build this machine
# kind keeps on disk (an unpinned torch would pull a multi-GB CUDA build).
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$VPY" -m pip install -q --disable-pip-version-check -e ".[test]"

echo "== test suite (CPU) =="
"$VPY" -m pytest -q "$@"

echo "== CUDA kernels under NUMBA_ENABLE_CUDASIM=1 =="
NUMBA_ENABLE_CUDASIM=1 "$VPY" -m pytest -q -m cuda "$@"
