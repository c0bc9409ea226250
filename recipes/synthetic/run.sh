#!/usr/bin/env bash
# The built-in corpus end to end, decoders compared: train the small model (CPU), build a 3-gram LM
# from the training transcripts, tune its weights on dev, then WER and real-time factor on test for
# greedy, beam and beam + LM decoding, and word-timestamp accuracy against espeak-ng's word times.
#   recipes/synthetic/run.sh [--stage N] [extra asr-train overrides...]
# Stages: 1 train, 2 LM, 3 tune alpha/beta, 4 evaluate decoders, 5 align. EXP (default runs/synthetic)
# is the run directory: EXP=runs/demo recipes/synthetic/run.sh --stage 2 reuses `make demo`'s model.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
stage=1
if [ "${1:-}" = "--stage" ]; then stage=$2; shift 2; fi
EXP=${EXP:-runs/synthetic}
DATA=data/synthetic
checkpoint="$EXP/checkpoints/best.pt"
lm="$DATA/lm/3gram.arpa"

if [ "$stage" -le 1 ]; then
  asr-train hydra.run.dir="$EXP" trainer.max_time_minutes=14.5 "$@"  # as make demo
fi
if [ "$stage" -le 2 ]; then
  asr-build-lm text="$DATA/manifests/train.jsonl" output="$lm" order=3
fi
if [ "$stage" -le 3 ]; then
  asr-tune-lm model="$checkpoint" manifest="$DATA/manifests/dev.jsonl" lm="$lm"
fi
if [ "$stage" -le 4 ]; then
  for decoder in greedy beam beam_lm; do
    asr-eval model="$checkpoint" manifest="$DATA/manifests/test.jsonl" decoder="$decoder" \
      output="$EXP/test_$decoder.json"
  done
fi
if [ "$stage" -le 5 ]; then
  asr-align model="$checkpoint" manifest="$DATA/manifests/test.jsonl" output="$EXP/test.ctm" \
    reference="$DATA/alignments/test.jsonl" plot=true
fi
