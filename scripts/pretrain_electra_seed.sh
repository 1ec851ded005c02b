#!/usr/bin/env bash
# Pre-trains a seed-shaped ELECTRA (masked LM) on the WOS sample for a bounded
# time and writes models/electra-seed/ (config.json + model.safetensors +
# tokenizer.json + pretrain_summary.json), loadable for fine-tuning with
# ModelSource::parse("models/electra-seed").
#   scripts/pretrain_electra_seed.sh                 # 4 minutes
#   MINUTES=10 MAX_STEPS=200 scripts/pretrain_electra_seed.sh --out runs/electra
# Extra arguments go to the example (see `cargo run --example pretrain_electra_seed -- --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --example pretrain_electra_seed -- \
    --minutes "${MINUTES:-4}" --max-steps "${MAX_STEPS:-60}" "$@"
