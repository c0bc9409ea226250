#!/usr/bin/env bash
# LibriSpeech data preparation in numbered, resumable stages (icefall style).
#   recipes/librispeech/prepare.sh [--stage N] [--stop-stage M]
# Stage 1: download each split's archive (resumes partial downloads, verifies sha256)
# Stage 2: extract it
# Stage 3: write its manifest (data/librispeech/manifests/<split>.jsonl)
# Each stage leaves a marker per split (<data>/.stage<N>-<name>-<split>.done) and skips the splits
# it has done: adding a split to SPLITS later does only the new work.
# Environment: DATA (default data/librispeech), SPLITS, BASE_URL (a mirror, file:// folder or
# local rehearsal server), CHECKSUMS (a sha256sum-style file for that mirror).
# Disk: the archives are 6.3 GB (train-clean-100), 23 GB (train-clean-360), 30 GB
# (train-other-500) and about 0.33 GB each (dev / test splits); extracted, each takes about as
# much again (FLAC does not shrink in a tar.gz). The archives can go once stage 2 is done.
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
SPLITS=${SPLITS:-"train-clean-100 dev-clean dev-other test-clean test-other"}
PYTHON=${PYTHON:-python}
download_args=()
[ -n "${BASE_URL:-}" ] && download_args+=(--base-url "$BASE_URL")
[ -n "${CHECKSUMS:-}" ] && download_args+=(--checksums "$CHECKSUMS")

run_stage() {  # run_stage N NAME SPLIT COMMAND...
  local number=$1 name=$2 split=$3; shift 3
  local marker="$DATA/.stage$number-$name-$split.done"
  if [ "$stage" -le "$number" ] && [ "$stop_stage" -ge "$number" ]; then
    if [ -f "$marker" ]; then
      echo "stage $number ($name $split): done already"
    else
      echo "stage $number ($name $split)"
      "$@"
      touch "$marker"
    fi
  fi
}

mkdir -p "$DATA"
for split in $SPLITS; do
  run_stage 1 download "$split" \
    "$PYTHON" -m asr.data.librispeech download "$split" --dest "$DATA/archives" "${download_args[@]}"
  run_stage 2 extract "$split" "$PYTHON" -m asr.data.librispeech extract "$DATA/archives/$split.tar.gz" --dest "$DATA"
  run_stage 3 manifests "$split" \
    "$PYTHON" -m asr.data.librispeech manifest "$DATA/LibriSpeech/$split" --out "$DATA/manifests"
done
