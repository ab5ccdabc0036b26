#!/usr/bin/env bash
# Set up the project's virtual environment (first run only) and run the main
# job: `dlviz demo`, the dashboard of a small transformer that trains while you
# look.  Extra arguments go to `dlviz demo` (e.g. --port 0, --no-browser).
set -euo pipefail
cd "$(dirname "$0")/.."

# .venv with CPU torch (the demo model is a torch module)
source scripts/_venv.sh
# (run from the repository root, `import dlviz_gpu` finds the source folder
# even when nothing is installed: check the console script and a dependency)
if [ ! -x .venv/bin/dlviz ] || ! "$VPY" -c "import panel, numba, dlviz_gpu.app" 2>/dev/null; then
    "$VPY" -m pip install -q --disable-pip-version-check -e .
    # setup, once: compile the engine's kernels into Numba's disk cache (~30 s
    # on two cores), so the dashboard's first page opens in seconds
    .venv/bin/dlviz demo --prepare
fi
exec .venv/bin/dlviz demo "$@"
