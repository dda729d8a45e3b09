#!/usr/bin/env bash
# Set up the environment, then run the demo. (The demo sweep lands with the engine; until then it lists what exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python eval.py --help
