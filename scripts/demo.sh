#!/usr/bin/env bash
# Set up the environment, then run the demo sweep (configs/demo.yaml: the four built-in reference models on CPU at
# 1K, 2K and 4K tokens, on data-free RULER tasks) and write its report. Needs nothing outside the repository.
# OUT=DIR to write elsewhere; a rerun resumes where it stopped. Under CI (CI set) it prints one line per cell.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUT=${OUT:-results/demo}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1   # everything it reads is in the repository
$PY eval.py sweep configs/demo.yaml --out "$OUT" ${CI:+--no-progress}
$PY eval.py report "$OUT"
echo "demo report: $OUT/report.md (plots in $OUT/plots/)"
