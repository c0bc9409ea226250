#!/usr/bin/env bash
# LibriSpeech data preparation in numbered, resumable stages (icefall style).
#   recipes/librispeech/prepare.sh [--stage N] [--stop-stage M]
# Stage 1: download archives (resumes partial downloads, verifies sha256)
# Stage 2: extract them
# Stage 3: write one manifest per split (data/librispeech/manifests/<split>.jsonl)
# A finished stage leaves <data>/.<stage>.done and is skipped next time.
# Environment: DATA (default data/librispeech), SPLITS, BASE_URL (a mirror or file:// folder),
# CHECKSUMS (a sha256sum-style file for that mirror).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made

stage=1
stop_stage=3
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage="$2"; shift 2 ;;
    --stop-stage) stop_stage="$2"; shift 2 ;;
    *) echo "usage: $0 [--stage N] [--stop-stage M]" >&2; exit 2 ;;
  esac
done

DATA=${DATA:-data/librispeech}
SPLITS=${SPLITS:-"train-clean-100 dev-clean test-clean test-other"}
PYTHON=${PYTHON:-python}
download_args=()
[ -n "${BASE_URL:-}" ] && download_args+=(--base-url "$BASE_URL")
[ -n "${CHECKSUMS:-}" ] && download_args+=(--checksums "$CHECKSUMS")

run_stage() {  # run_stage N NAME COMMAND...
  local number=$1 name=$2; shift 2
  local marker="$DATA/.stage$number-$name.done"
  if [ "$stage" -le "$number" ] && [ "$stop_stage" -ge "$number" ]; then
    if [ -f "$marker" ]; then
      echo "stage $number ($name): done already"
    else
      echo "stage $number ($name)"
      "$@"
      touch "$marker"
    fi
  fi
}

mkdir -p "$DATA"
# shellcheck disable=SC2086  # SPLITS is a word list
run_stage 1 download "$PYTHON" -m asr.data.librispeech download $SPLITS --dest "$DATA/archives" "${download_args[@]}"
archives=()
for split in $SPLITS; do archives+=("$DATA/archives/$split.tar.gz"); done
run_stage 2 extract "$PYTHON" -m asr.data.librispeech extract "${archives[@]}" --dest "$DATA"
split_dirs=()
for split in $SPLITS; do split_dirs+=("$DATA/LibriSpeech/$split"); done
run_stage 3 manifests "$PYTHON" -m asr.data.librispeech manifest "${split_dirs[@]}" --out "$DATA/manifests"
