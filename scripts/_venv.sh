# Sourced by scripts/test.sh and scripts/demo.sh (from the repository root):
# create .venv on first use and put CPU torch in it; sets VPY.
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# 2.13.0 is the CPU build this machine kind keeps on disk (an unpinned torch
# would pull a multi-GB CUDA build)
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
