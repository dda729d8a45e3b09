#!/usr/bin/env bash
# Set up the environment, then run the whole test suite (kernels through Triton's CPU interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One thread per test worker: two workers share two cores, and oversubscribed OpenMP threads spin.
export TRITON_INTERPRET=1 PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1
.venv/bin/ruff check --quiet . || { echo "ruff found problems (see above)"; exit 1; }
exec .venv/bin/python -m pytest -n 2 "$@"
