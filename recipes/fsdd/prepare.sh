#!/usr/bin/env bash
# FSDD connected-digit data: the recordings (a local folder, or FSDD's pinned release downloaded
# and verified), then utterances, folds and manifests in DATA (default data/fsdd).
#   FSDD_DIR=path/to/free-spoken-digit-dataset/recordings recipes/fsdd/prepare.sh
# Without FSDD_DIR the release archive is downloaded into DATA/download (FSDD_URL: a mirror).
# SYNTHETIC_VOICES=N (60; 0 for none) adds N espeak-ng voices' connected digits to every fold's
# training set.
# Both steps keep what is done: a rerun checks and returns.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
DATA=${DATA:-data/fsdd}
if [ -z "${FSDD_DIR:-}" ]; then
  FSDD_DIR=$(python -m asr.data.fsdd download "$DATA/download" ${FSDD_URL:+--url "$FSDD_URL"})
fi
python -m asr.data.fsdd prepare "$FSDD_DIR" "$DATA" --synthetic-voices "${SYNTHETIC_VOICES:-60}"
