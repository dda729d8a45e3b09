#!/usr/bin/env bash
# Create .venv beside the repo root and install posbench's requirements into it (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import torch, transformers; print(f'posbench env: torch {torch.__version__}, transformers {transformers.__version__}')"
# lm-eval's own CLI learns `--model posbench` (one start-up line in .venv, active only for lm_eval runs naming posbench)
.venv/bin/python -m harness.lm_eval_hook install
