#!/usr/bin/env bash
# Run here (with network), before a GPU session: downloads into .whl/ (git-ignored) the wheels
# that the bare GPU machine lacks (Python 3.12, manylinux x86-64): diffusers and the one
# dependency of it that machine does not have. Carry .whl with the run (carry: [".whl"]);
# benchmarks/gpu_check.sh installs them first. Versions: DIFFUSERS_VERSION (default: the one the
# project is tested with) and IMPORTLIB_METADATA_VERSION (8.x: newer ones need lazy-importer).
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFUSERS_VERSION=${DIFFUSERS_VERSION:-0.42.1}
IMPORTLIB_METADATA_VERSION=${IMPORTLIB_METADATA_VERSION:-8.7.0}
PYTHON=${PYTHON:-python3}
rm -rf .whl
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "diffusers==${DIFFUSERS_VERSION}" "importlib_metadata==${IMPORTLIB_METADATA_VERSION}"
ls -l .whl
du -sh .whl
