#!/usr/bin/env bash
# Create .venv beside the repo root and install posbench (editable) with its test and lm-eval extras (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,lm-eval]" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, transformers; print(f'posbench env: torch {torch.__version__}, transformers {transformers.__version__}')"
