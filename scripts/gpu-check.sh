#!/usr/bin/env bash
# The GPU proof (issue 9), run on a lent GPU machine in one call:
#   1. CUDA is seen (nvidia-smi, torch);
#   2. MiniLM logits on the GPU match the CPU's (fp32 <= 1e-3; bf16 reported);
#   3. training/eval samples/s for MiniLM and a bert-base-shaped model at batch 32,
#      MAX_LEN 128, fp32 and bf16, Rust and Python transformers alternately.
# Everything lands in $OUT as it is produced (a timeout keeps what finished).
#
# Prepared here by scripts/gpu-bundle.sh (.gpu/: the release binary, MiniLM,
# the WOS sample); run there as
#   bash scripts/gpu-check.sh            # DEVICE=cpu ROUNDS=1 STEPS=2 for a dry run
set -uo pipefail
BUNDLE=${BUNDLE:-.gpu}
OUT=${OUT:-bench/results/gpu-dry-run}
DEVICE=${DEVICE:-cuda}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-30}
PY=${PY:-/opt/torch/.venv/bin/python}
[ -x "$PY" ] || PY=.venv/bin/python
mkdir -p "$OUT"
log() { echo "[gpu-check $(date +%T)] $*" | tee -a "$OUT/log.txt"; }

BIN=$BUNDLE/encoder-bench
if [ ! -x "$BIN" ]; then
  "$PY" -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$BIN.xz" "$BIN" && chmod +x "$BIN"
fi
TORCH_LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true HF_HUB_OFFLINE=1

log "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
"$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "transformers", transformers.__version__)' 2>&1 | tee -a "$OUT/log.txt"

log "check-device: MiniLM logits, $DEVICE vs CPU"
"$BIN" check-device --model "$BUNDLE/minilm" --data "$BUNDLE/wos-sample" --device "$DEVICE" --n 32 --max-len 128 --tol 1e-3 \
  > "$OUT/check_device.json" 2>> "$OUT/log.txt"
log "check-device exit $?: $(cat "$OUT/check_device.json")"

COMMON=(--data "$BUNDLE/wos-sample" --device "$DEVICE" --batch-size 32 --max-len 128 --warmup 5 --train-steps "$STEPS" --eval-batches "$STEPS")
for round in $(seq 1 "$ROUNDS"); do
  for model in minilm bert-base; do
    if [ "$model" = minilm ]; then M=(--model "$BUNDLE/minilm" --name minilm); P=(--model "$BUNDLE/minilm" --name minilm)
    else M=(--random-config bench/configs/bert-base.json --tokenizer "$BUNDLE/minilm" --name bert-base-random)
         P=(--random-config bench/configs/bert-base.json --tokenizer "$BUNDLE/minilm" --name bert-base-random); fi
    MM=(); [ "$round" = 1 ] && [ "$model" = minilm ] && MM=(--matmul 4096)
    log "round $round $model: rust"
    "$BIN" bench "${M[@]}" "${COMMON[@]}" --precision fp32,bf16 --json "${MM[@]}" >> "$OUT/rust.jsonl" 2>> "$OUT/log.txt" || log "rust failed ($?)"
    V=tuned,bf16; [ "$round" = 1 ] && V=seed,tuned,bf16
    log "round $round $model: python $V"
    "$PY" bench/reference.py "${P[@]}" "${COMMON[@]}" --variants "$V" "${MM[@]}" >> "$OUT/python.jsonl" 2>> "$OUT/log.txt" || log "python failed ($?)"
  done
done
log "done"
tail -n 4 "$OUT/rust.jsonl" "$OUT/python.jsonl" | cut -c1-400
