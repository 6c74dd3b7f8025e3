#!/usr/bin/env bash
# The GPU check in one command, for a bare GPU machine (no diffusers there, no network):
#   benchmarks/prepare_wheels.sh            # once, here, with network: fills .whl/
#   benchmarks/gpu_check.sh [--compile]     # there, with .whl carried; table in $OUT (or ./gpu_check_out)
#   benchmarks/gpu_check.sh --device cpu --tiny   # the CPU rehearsal (part of the test suite)
# OSDFACE_NO_WHEELS=1 skips installing .whl/ (where diffusers is installed already).
# Any option is passed to benchmarks/gpu_check.py (--help lists them). Exits non-zero if any path fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -z "${OSDFACE_NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
  site=${OSDFACE_WHEEL_SITE:-/tmp/osdface-site}
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
