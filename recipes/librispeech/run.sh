#!/usr/bin/env bash
# LibriSpeech end to end: prepare -> train (DeepSpeech2 size, GPU) -> WER on test-clean and test-other.
#   recipes/librispeech/run.sh [extra asr-train overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."
EXP=${EXP:-runs/librispeech}

recipes/librispeech/prepare.sh
asr-train data=librispeech model=ds2 trainer.device=cuda trainer.max_epochs=30 hydra.run.dir="$EXP" "$@"
for split in test-clean test-other; do
  asr-eval checkpoint="$EXP/checkpoints/best.pt" manifest="data/librispeech/manifests/$split.jsonl" \
    output="$EXP/$split.json"
done
