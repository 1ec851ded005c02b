#!/usr/bin/env bash
# Pre-trains a seed-shaped ELECTRA (masked LM) on the WOS sample for a bounded
# time and writes models/electra-seed/ (config.json + model.safetensors +
# tokenizer.json + pretrain_summary.json), loadable for fine-tuning with
# ModelSource::parse("models/electra-seed").
#   scripts/pretrain_electra_seed.sh                 # 4 minutes
#   MINUTES=10 MAX_STEPS=200 scripts/pretrain_electra_seed.sh --out runs/electra
# Extra arguments go to `encoder-bench pretrain` (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -- pretrain --minutes "${MINUTES:-4}" --max-steps "${MAX_STEPS:-60}" "$@"
