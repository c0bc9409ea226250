#!/usr/bin/env bash
# The LibriSpeech recipe without the internet: the built-in corpus packed as OpenSLR publishes
# LibriSpeech (asr-synth as_openslr=DIR: split archives, checksums, the upper-case gzipped 3-gram),
# served on 127.0.0.1, then run.sh exactly as for the real corpus, with the small model on the CPU
# for MINUTES (5) of training. Results in WORK/exp/RESULTS.md.
#   recipes/librispeech/rehearse.sh [extra asr-train overrides...]
# Environment: WORK (runs/librispeech-rehearsal), MINUTES (5).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
WORK=${WORK:-runs/librispeech-rehearsal}
asr-synth "$WORK/corpus" train_speakers=48 dev_speakers=4 test_speakers=4 utterances_per_speaker=25 seed=7 \
  as_openslr="$WORK/openslr"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python -m http.server "$port" --bind 127.0.0.1 --directory "$WORK/openslr" > "$WORK/server.log" 2>&1 &
server=$!
trap 'kill $server' EXIT
url="http://127.0.0.1:$port"
until python -c "import urllib.request; urllib.request.urlopen('$url/SHA256SUMS')" 2>/dev/null; do sleep 0.2; done
BASE_URL=$url CHECKSUMS="$WORK/openslr/SHA256SUMS" LM_URL="$url/3-gram.pruned.1e-7.arpa.gz" DATA="$WORK/data" \
  EXP="$WORK/exp" recipes/librispeech/run.sh model=small trainer.device=cpu \
  trainer.max_time_minutes="${MINUTES:-5}" data.on_bad_sample=skip "$@"
