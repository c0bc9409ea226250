#!/usr/bin/env bash
# LibriSpeech end to end: prepare -> train (DeepSpeech2 size, GPU) -> 3-gram LM from the training
# transcripts, tuned on dev-clean -> WER on test-clean and test-other, greedy and beam + LM.
#   recipes/librispeech/run.sh [extra asr-train overrides...]
# A stronger LM: LM=path/to/3-gram.pruned.1e-7.arpa (OpenSLR 11, built from LibriSpeech's
# 800-million-word LM corpus) instead of the one built here.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
EXP=${EXP:-runs/librispeech}
manifests=data/librispeech/manifests
LM=${LM:-data/librispeech/lm/3gram.arpa}

recipes/librispeech/prepare.sh
asr-train data=librispeech model=ds2 optim.lr=1e-3 optim.warmup_steps=1000 trainer.device=cuda \
  trainer.max_epochs=30 trainer.eval_every_steps=2000 hydra.run.dir="$EXP" "$@"
[ -f "$LM" ] || asr-build-lm text="$manifests/train-clean-100.jsonl" output="$LM" order=3
asr-tune-lm checkpoint="$EXP/checkpoints/best.pt" manifest="$manifests/dev-clean.jsonl" lm="$LM"
for split in test-clean test-other; do
  for decoder in greedy beam_lm; do
    asr-eval checkpoint="$EXP/checkpoints/best.pt" manifest="$manifests/$split.jsonl" decoder="$decoder" \
      output="$EXP/${split}_$decoder.json"
  done
done
