#!/usr/bin/env bash
# What posbench runs on a lent GPU, in stages that each fit one device call (the device tool's $OUT collects files).
#   bash scripts/gpu_session.sh checks   # native kernel tests, posbench.kernels.gpu_check, eval.py bench --profile (~6 min)
#   bash scripts/gpu_session.sh verify   # the same without posbench.kernels.gpu_check (~3 min)
#   bash scripts/gpu_session.sh sweep    # RULER throughput sweep on a random 1B model + transformers baseline (~4 min)
#   bash scripts/gpu_session.sh reference  # configs/reference_ruler.yaml: the reference models' RULER result (~5 min)
#   bash scripts/gpu_session.sh profile  # eval.py bench with 15 repetitions and the RoPE-vs-RePo kernel profile
#   bash scripts/gpu_session.sh ncu      # Nsight Compute on the rotary kernels at 16K (scripts/ncu_rotary.py)
#   bash scripts/gpu_session.sh engine   # issue 14: graph decoder vs eager agreement, decode/prefill/sweep against
#                                        # their floors, transformers at the same batch size on the same prompts (~8 min)
#   bash scripts/gpu_session.sh analyze  # eval.py analyze at 16K on a random OLMo-2-1B-shaped RePo checkpoint (~3 min)
# Needs: .whl/ (nltk, wonderwords, click wheels for python 3.12) and .device_data/ (tokenizer, essays, punkt_tab),
# carried with the call. Every step has its own time limit and logs under $OUT; a failing step never stops the next.
set -uo pipefail
cd "$(dirname "$0")/.."
# Everything is written under $WORK; at the end it is packed into $OUT/<stage>.tgz (the device tool returns at most
# 8 files) next to copies of the few tables worth reading at once.
OUT=${OUT:-/tmp/posbench_out}
STAGE=${1:-checks}
WORK=/tmp/posbench_work/$STAGE
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
unset TRITON_INTERPRET
# The GPU image has posbench's dependencies but not posbench: import it from this checkout (no install, no network).
export PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PWD:/tmp/site
fi
# A gzipped tokenizer travels smaller (the device tool's 64 MiB limit): .device_gz/ holds it when .device_data lacks it.
if [ -f .device_gz/olmo2_dolma2_tokenizer.json.gz ] && [ ! -f .device_data/tokenizers/olmo2_dolma2_tokenizer.json ]; then
  mkdir -p .device_data/tokenizers
  gunzip -c .device_gz/olmo2_dolma2_tokenizer.json.gz > .device_data/tokenizers/olmo2_dolma2_tokenizer.json
fi
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s) $(date +%T)"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  echo "=== $name rc=$rc in $((SECONDS - t0))s"
  tail -n 25 "$WORK/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv > "$WORK/gpu.txt" 2>&1
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__, \
torch.cuda.get_device_name())" >> "$WORK/gpu.txt" 2>&1
cat "$WORK/gpu.txt"

case "$STAGE" in
  checks|verify)   # verify: the same without posbench.kernels.gpu_check
    export POSBENCH_DATA=.device_data   # the engine tests read the OLMo-2 tokenizer from there
    step pytest_gpu 150 python3 -m pytest tests/test_kernels_rotary.py tests/test_kernels_attention.py \
      tests/test_kernels_fused.py tests/test_model_parity.py tests/test_repo.py tests/test_engine.py \
      tests/test_packed_linears.py -q -p no:cacheprovider
    [ "$STAGE" = checks ] && step gpu_check 150 python3 -m posbench.kernels.gpu_check --out "$WORK/kernels" --quick
    step bench 240 python3 eval.py bench --out "$WORK/bench" --profile --reps 15
    cp "$WORK/bench/bench.md" "$OUT/bench.md" 2>/dev/null
    cp "$WORK/kernels/gpu_check.md" "$OUT/gpu_check.md" 2>/dev/null
    ;;
  sweep)
    step random_1b 90 python3 -c "from posbench.harness.bench import save_random_checkpoint as s; \
s('/tmp/olmo2-1b-random', '.device_data/tokenizers/olmo2_dolma2_tokenizer.json')"
    step sweep 330 python3 eval.py sweep configs/gpu_ruler_random1b.yaml --out "$WORK/sweep" --no-progress
    step hf_baseline 150 python3 scripts/hf_generate_baseline.py configs/gpu_ruler_random1b.yaml "$WORK/sweep" \
      --model rope --tasks niah_single_1
    step report 60 python3 eval.py report "$WORK/sweep"
    cp "$WORK/sweep/hf_baseline.md" "$WORK/sweep/summary.csv" "$OUT/" 2>/dev/null
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); [print(k, v) for k, v in m['cells'].items()]" \
      "$WORK/sweep/manifest.json" > "$OUT/sweep_cells.txt" 2>&1
    ;;
  reference)
    export POSBENCH_DATA=.device_data
    step reference_sweep 420 python3 eval.py sweep configs/reference_ruler.yaml --out "$WORK/reference_ruler" \
      --device cuda --no-progress
    step report 60 python3 eval.py report "$WORK/reference_ruler" --baseline rope
    cp "$WORK/reference_ruler/summary.csv" "$WORK/reference_ruler/report.md" "$OUT/" 2>/dev/null
    ;;
  profile)
    step bench 420 python3 eval.py bench --out "$WORK/bench" --profile --reps 15 \
      --schemes rope,nope,hybrid,repo
    cp "$WORK/bench/bench.md" "$OUT/bench.md" 2>/dev/null
    ;;
  ncu)
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
    for k in plain fused fused_bwd; do
      case $k in plain) re=_rotary_qk_kernel ;; fused) re=_qk_norm_rotary_fwd ;; fused_bwd) re=_qk_norm_rotary_bwd ;; esac
      step "ncu_$k" 150 "$NCU" --clock-control none --kernel-name "regex:$re" --launch-skip 2 --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section SchedulerStats --section MemoryWorkloadAnalysis python3 scripts/ncu_rotary.py $k
      cp "$WORK/ncu_$k.log" "$OUT/" 2>/dev/null
    done
    ;;
  engine)
    step random_1b 60 python3 -c "from posbench.harness.bench import save_random_checkpoint as s; \
s('/tmp/olmo2-1b-random', '.device_data/tokenizers/olmo2_dolma2_tokenizer.json')"
    step agreement 110 python3 scripts/graph_vs_eager.py .device_data/tokenizers/olmo2_dolma2_tokenizer.json \
      --checkpoint /tmp/olmo2-1b-random --out "$WORK/agreement.json"
    step sweep 150 python3 eval.py sweep configs/gpu_ruler_random1b.yaml --out "$WORK/sweep" --no-progress
    step hf_baseline 90 python3 scripts/hf_generate_baseline.py configs/gpu_ruler_random1b.yaml "$WORK/sweep" \
      --model rope --tasks niah_single_1,vt --batch-size 8
    step bench 150 python3 eval.py bench --out "$WORK/bench" --no-kernels --no-hf --reps 5 --sweep "$WORK/sweep"
    cp "$WORK/agreement.json" "$WORK/bench/bench.md" "$WORK/bench/bench.json" "$WORK/sweep/hf_baseline.md" \
      "$WORK/sweep/summary.csv" "$OUT/" 2>/dev/null
    ;;
  engine-quick)   # the engine stage's correctness check and decode/prefill floors only (~2.5 min)
    step agreement 70 python3 scripts/graph_vs_eager.py .device_data/tokenizers/olmo2_dolma2_tokenizer.json \
      --random-1b --prompts 8 --out "$OUT/agreement.json"
    step bench 100 python3 eval.py bench --out "$OUT/bench" --no-kernels --no-hf --reps 3
    cp "$WORK/agreement.log" "$WORK/bench.log" "$OUT/" 2>/dev/null
    ;;
  engine-min)   # the least that says whether the graphs are right and fast: fp32 agreement, rope/repo decode (~1.5 min)
    step agreement 30 python3 scripts/graph_vs_eager.py .device_data/tokenizers/olmo2_dolma2_tokenizer.json \
      --prompts 6 --out "$OUT/agreement.json"
    step bench 60 python3 eval.py bench --out "$OUT/bench" --no-kernels --no-hf --reps 3 --schemes rope,repo \
      --lengths 4k,16k
    cp "$WORK/agreement.log" "$WORK/bench.log" "$OUT/" 2>/dev/null
    ;;
  analyze)   # the time of eval.py analyze at 16K on the paper's shape: random weights, RePo maps in layers 5-15
    export POSBENCH_DATA=.device_data
    step random_1b_repo 150 python3 -c "import torch
from posbench.harness.bench import save_random_checkpoint
from posbench.harness.core.checkpoint import load_model, save_model
rope = save_random_checkpoint('/tmp/olmo2-1b-rope', '.device_data/tokenizers/olmo2_dolma2_tokenizer.json')
model, tokenizer, _ = load_model(rope, scheme='repo,start_layer=5,fresh_init=true', dtype=torch.bfloat16,
                                 device='cuda')
save_model(model, '/tmp/olmo2-1b-repo', tokenizer)"
    step analyze_16k 420 python3 eval.py analyze /tmp/olmo2-1b-repo@repo1b --task niah_single_1 --lengths 16k \
      --samples 5 --max-new-tokens 16 --device cuda --out "$WORK/analyze"
    cp "$WORK/analyze/repo1b/analysis.md" "$OUT/analysis_16k.md" 2>/dev/null
    ;;
  *) echo "unknown stage $STAGE"; exit 2 ;;
esac
rm -rf /tmp/posbench_work/$STAGE/kernels/*.pt 2>/dev/null
tar czf "$OUT/$STAGE.tgz" -C /tmp/posbench_work "$STAGE"
echo "packed $OUT/$STAGE.tgz ($(du -h "$OUT/$STAGE.tgz" | cut -f1))"
