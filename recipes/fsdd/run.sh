#!/usr/bin/env bash
# FSDD connected digits (real voices), leave one speaker out: for each fold, train on three
# speakers (and SYNTHETIC_VOICES espeak-ng voices, 60) for MINUTES (8) of wall-clock time, with
# model=small_8k optim.warmup_steps=100 augment=time_masks (RESULTS.md; overrides given after them
# win: augment=none for none), then WER on
# the fourth of the average of the run's kept best checkpoints, greedy and with a digit LM (a
# 3-gram of the fold's training transcripts, its weights tuned on the fold's dev set), and
# RESULTS.md in EXP with each fold and the mean.
#   recipes/fsdd/run.sh [--stage N] [extra asr-train overrides...]
# Stages: 0 data (prepare.sh), 1 train, 2 LM and its weights, 3 evaluate, 4 results.
# Environment: FOLDS (default: all four speakers; e.g. FOLDS=lucas for one), EXP (runs/fsdd),
# MINUTES (8), CHECKPOINT (unset: averaged, else averaged or best, the best single checkpoint,
# tested into test_<decoder>_<CHECKPOINT>.json: results.py --ablation NAME=EXP@CHECKPOINT),
# DECODERS ("greedy beam_lm"; greedy alone skips the LM), and prepare.sh's FSDD_DIR / DATA /
# SYNTHETIC_VOICES.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
stage=0
if [ "${1:-}" = "--stage" ]; then stage=$2; shift 2; fi
export DATA=${DATA:-data/fsdd}
EXP=${EXP:-runs/fsdd}
FOLDS=${FOLDS:-"george jackson lucas yweweler"}
MINUTES=${MINUTES:-8}
DECODERS=${DECODERS:-"greedy beam_lm"}

if [ "$stage" -le 0 ]; then
  recipes/fsdd/prepare.sh
fi
for fold in $FOLDS; do
  manifests="$DATA/folds/$fold"
  run="$EXP/$fold"
  if [ "$stage" -le 1 ]; then
    asr-train data=manifest data.train_manifest="$manifests/train.jsonl" \
      data.dev_manifest="$manifests/dev.jsonl" trainer.max_time_minutes="$MINUTES" \
      hydra.run.dir="$run" model=small_8k optim.warmup_steps=100 augment=time_masks "$@"
  fi
  # The average of the kept best checkpoints (trainer.average_best; RESULTS.md, "Averaged
  # checkpoints"), or, unless CHECKPOINT names one, best.pt where the run kept too few to average.
  checkpoint="$run/checkpoints/${CHECKPOINT:-averaged}.pt"
  [ -n "${CHECKPOINT:-}" ] || [ -f "$checkpoint" ] || checkpoint="$run/checkpoints/best.pt"
  if [ "$stage" -le 2 ] && [[ " $DECODERS " == *" beam_lm "* ]]; then
    asr-build-lm text="$manifests/train.jsonl" output="$run/digits.arpa" order=3
    asr-tune-lm model="$checkpoint" manifest="$manifests/dev.jsonl" lm="$run/digits.arpa"
  fi
  if [ "$stage" -le 3 ]; then
    for decoder in $DECODERS; do
      asr-eval model="$checkpoint" manifest="$manifests/test.jsonl" decoder="$decoder" \
        lm="$run/digits.arpa" output="$run/test_$decoder${CHECKPOINT:+_$CHECKPOINT}.json"
    done
  fi
done
if [ "$stage" -le 4 ]; then
  python recipes/fsdd/results.py "$EXP${CHECKPOINT:+@$CHECKPOINT}" --folds $FOLDS
fi
