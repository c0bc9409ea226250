#!/usr/bin/env bash
# LibriSpeech end to end: prepare (download, verify, extract, manifests) -> train
# (+experiment=librispeech_ds2: DeepSpeech2 size, one GPU) -> an n-gram LM, its weights tuned on
# dev-clean for test-clean and on dev-other for test-other -> WER, greedy and beam + LM, in
# EXP/RESULTS.md.
#   recipes/librispeech/run.sh [--stage N] [extra asr-train overrides...]
# Stages: 0 data (prepare.sh), 1 train, 2 LM, 3 tune the LM weights, 4 evaluate, write RESULTS.md.
# Environment: EXP (runs/librispeech); LM: an ARPA file to use (.arpa or .arpa.gz, any case), or
# LM_URL: one to download (OpenSLR's: https://www.openslr.org/resources/11/3-gram.pruned.1e-7.arpa.gz,
# checked against CHECKSUMS if listed there), neither: a 3-gram of the training transcripts; and
# prepare.sh's DATA, SPLITS, BASE_URL, CHECKSUMS. The train-* splits in SPLITS are trained on
# together. A rehearsal without the internet: asr-synth ROOT as_openslr=DIR, serve DIR, and
# BASE_URL=http://127.0.0.1:PORT CHECKSUMS=DIR/SHA256SUMS LM_URL=$BASE_URL/3-gram.pruned.1e-7.arpa.gz.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
stage=0
if [ "${1:-}" = "--stage" ]; then stage=$2; shift 2; fi
export DATA=${DATA:-data/librispeech}
export SPLITS=${SPLITS:-"train-clean-100 dev-clean dev-other test-clean test-other"}
EXP=${EXP:-runs/librispeech}
manifests="$DATA/manifests"
checkpoint="$EXP/checkpoints/best.pt"

if [ "$stage" -le 0 ]; then
  recipes/librispeech/prepare.sh
  train_splits=()
  for split in $SPLITS; do [[ $split == train-* ]] && train_splits+=("$manifests/$split.jsonl"); done
  cat "${train_splits[@]}" > "$manifests/train.jsonl.tmp" && mv "$manifests/train.jsonl.tmp" "$manifests/train.jsonl"
fi
if [ "$stage" -le 1 ]; then
  asr-train +experiment=librispeech_ds2 data.train_manifest="$manifests/train.jsonl" \
    data.dev_manifest="$manifests/dev-clean.jsonl" data.test_manifest="$manifests/test-clean.jsonl" \
    hydra.run.dir="$EXP" "$@"
fi
if [ -n "${LM:-}" ]; then
  lm=$LM
elif [ -n "${LM_URL:-}" ]; then
  lm="$DATA/lm/$(basename "$LM_URL")"
else
  lm="$DATA/lm/3gram.arpa"
fi
if [ "$stage" -le 2 ] && [ -z "${LM:-}" ]; then
  if [ -n "${LM_URL:-}" ]; then
    python -m asr.data.librispeech fetch "$LM_URL" --dest "$lm" ${CHECKSUMS:+--checksums "$CHECKSUMS"}
  else
    asr-build-lm text="$manifests/train.jsonl" output="$lm" order=3
  fi
fi
for pair in test-clean:dev-clean test-other:dev-other; do
  test_split=${pair%%:*} dev_split=${pair##*:}
  if [ "$stage" -le 3 ]; then
    asr-tune-lm model="$checkpoint" manifest="$manifests/$dev_split.jsonl" lm="$lm" \
      output="$EXP/lm.$dev_split.json"
  fi
  if [ "$stage" -le 4 ]; then
    asr-eval model="$checkpoint" manifest="$manifests/$test_split.jsonl" output="$EXP/${test_split}_greedy.json"
    asr-eval model="$checkpoint" manifest="$manifests/$test_split.jsonl" decoder=beam_lm \
      tuned="$EXP/lm.$dev_split.json" output="$EXP/${test_split}_beam_lm.json"
  fi
done
if [ "$stage" -le 4 ]; then
  python recipes/librispeech/results.py "$EXP"
fi
