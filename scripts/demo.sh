#!/usr/bin/env bash
# Set up the environment, then run the demo sweep on the built-in default models on CPU and write its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUT=${OUT:-results/demo}
if [ -f models/reference/rope/config.json ]; then
  SWEEP=configs/demo.yaml
else
  SWEEP=configs/demo_tiny.yaml
  echo "NOTE: no trained reference models in models/reference/: the demo uses tiny RANDOM-weight models," \
       "so its scores are noise. It shows the pipeline, not a result."
  for s in rope nope hybrid,pattern=RRRN repo,start_layer=2; do
    name=${s%%,*}
    [ -f "results/builtin_tiny/$name/config.json" ] || \
      $PY -c "import sys; from harness.tiny import build_tiny_model; build_tiny_model(sys.argv[1], sys.argv[2], sys.argv[3])" \
        "results/builtin_tiny/$name" ../shared/data/tokenizers/olmo2_dolma2_tokenizer.json "$s"
  done
fi
$PY eval.py sweep "$SWEEP" --out "$OUT"
$PY eval.py report "$OUT"
echo "demo report: $OUT/report.md"
