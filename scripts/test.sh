#!/usr/bin/env bash
# Set up the project's virtual environment (first run only) and run the whole
# test suite: once normally, then the CUDA tests again under Numba's CUDA
# simulator, then the GPU check's simulator smoke run.  Extra arguments go to
# both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# .venv with CPU torch (the demo model and the tests' checkpoints need it)
source scripts/_venv.sh
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
"$VPY" -m pip install -q --disable-pip-version-check -e ".[test]"

# The browser tests (tests/browser, run in the CPU pass below) drive Debian's
# chromium through Playwright; Playwright's own browser downloads are not used.
# Install it when missing.  If that is impossible the browser tests skip, or
# fail when CI is set.
if [ ! -x /usr/bin/chromium ] && [ -z "${DLVIZ_CHROMIUM:-}" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO="none"; fi
    fi
    if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "== /usr/bin/chromium is missing and cannot be installed here (needs apt-get and root or sudo); browser tests will skip (fail under CI) =="
    else
        echo "== installing chromium for the browser tests: ${SUDO:+$SUDO }apt-get install -y chromium =="
        if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; then
            echo "== apt-get install failed; running apt-get update, then installing again =="
            $SUDO apt-get update -q || true
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
                || echo "== could not install chromium; browser tests will skip (fail under CI) =="
        fi
    fi
fi

echo "== test suite (CPU) =="
"$VPY" -m pytest -q "$@"

echo "== CUDA kernels under NUMBA_ENABLE_CUDASIM=1 =="
NUMBA_ENABLE_CUDASIM=1 "$VPY" -m pytest -q -m cuda "$@"
