#!/usr/bin/env bash
# The GPU check in one command, for a bare GPU machine (no diffusers there, no network):
#   benchmarks/prepare_wheels.sh            # once, here, with network: fills .whl/
#   benchmarks/gpu_check.sh [--compile]     # there, with .whl carried; table in $OUT (or ./gpu_check_out)
#   benchmarks/gpu_check.sh --device cpu --tiny   # the CPU rehearsal (part of the test suite)
# OSDFACE_NO_WHEELS=1 skips installing .whl/ (where diffusers is installed already).
# OSDFACE_SPACE_TORCH=auto|require|skip: run on the Space's torch build (see below).
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

# The torch build the Space installs (requirements.txt's pin), so that the figures describe what
# users get. OSDFACE_SPACE_TORCH: "auto" (default) installs it into a venv beside the machine's
# packages when the installed torch differs, from .whl/ or the index, and otherwise goes on with
# the installed torch (the table's first line says which build ran); "require" stops instead;
# "skip" uses the installed torch.
space_torch=$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' requirements.txt | head -1)
space_vision=$(sed -n 's/^torchvision==\([^ ;]*\).*/\1/p' requirements.txt | head -1)
installed=$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo none)
mode=${OSDFACE_SPACE_TORCH:-auto}
if [ "$mode" != skip ] && [ "$installed" != "$space_torch" ]; then
  venv=${OSDFACE_SPACE_VENV:-/tmp/osdface-space-torch}
  echo "torch $installed here; the Space installs torch $space_torch: installing it into $venv"
  links=()
  if compgen -G ".whl/torch-*.whl" >/dev/null; then links=(--find-links .whl); fi
  if "$PYTHON" -m venv --system-site-packages "$venv" &&
    "$venv/bin/python" -m pip install -q --retries 0 --timeout 15 ${links[@]+"${links[@]}"} \
      "torch==$space_torch" "torchvision==$space_vision"; then
    PYTHON="$venv/bin/python"
  elif [ "$mode" = require ]; then
    echo "could not install torch $space_torch (OSDFACE_SPACE_TORCH=require): stopping" >&2
    exit 1
  else
    echo "could not install torch $space_torch (no index or wheels here): going on with torch $installed"
  fi
fi
exec "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
