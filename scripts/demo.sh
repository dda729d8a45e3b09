#!/usr/bin/env bash
# Set up the environment, then run the demo sweep (configs/demo.yaml: the four built-in reference models on CPU at
# 1K, 2K and 4K tokens) and write its report. OUT=DIR to write elsewhere; a rerun resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUT=${OUT:-results/demo}
$PY eval.py sweep configs/demo.yaml --out "$OUT"
$PY eval.py report "$OUT"
echo "demo report: $OUT/report.md (plots in $OUT/plots/)"
