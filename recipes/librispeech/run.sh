#!/usr/bin/env bash
# LibriSpeech end to end: prepare -> train (DeepSpeech2 size, GPU) -> WER on test-clean and test-other.
#   recipes/librispeech/run.sh [extra asr-train overrides...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
EXP=${EXP:-runs/librispeech}

recipes/librispeech/prepare.sh
asr-train data=librispeech model=ds2 optim.lr=1e-3 optim.warmup_steps=1000 trainer.device=cuda \
  trainer.precision=bf16 trainer.max_epochs=30 trainer.eval_every_steps=2000 hydra.run.dir="$EXP" "$@"
for split in test-clean test-other; do
  asr-eval checkpoint="$EXP/checkpoints/best.pt" manifest="data/librispeech/manifests/$split.jsonl" \
    output="$EXP/$split.json"
done
