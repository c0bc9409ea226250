#!/usr/bin/env bash
# A quick screen of settings on a GPU: every variant's four folds train at once, each for the
# number of steps that its fold trains in run.sh's 8 minutes on the 2-core CPU (STEPS), then
# greedy test WER and one table (results.py --ablation). Steps, not minutes, so the GPU's speed
# does not change what is compared, and float32 as on the CPU; a setting that changes the CPU's
# time per step still needs run.sh on the CPU to be measured.
#   recipes/fsdd/screen.sh NAME="overrides" [NAME="overrides" ...]   (NAME= for the defaults)
# Environment: DATA (data/fsdd; prepared, with speakers in its manifests), EXP (runs/fsdd_screen),
# STEPS ("fold:steps ...", the steps of runs/fsdd_evalprior2 on the CPU).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
DATA=${DATA:-data/fsdd}
EXP=${EXP:-runs/fsdd_screen}
STEPS=${STEPS:-"george:1477 jackson:1533 lucas:1500 yweweler:1441"}
[ $# -gt 0 ] || { echo "usage: $0 NAME=\"overrides\" [...]" >&2; exit 2; }

experiments=()
for variant in "$@"; do
  name=${variant%%=*}
  read -r -a overrides <<< "${variant#*=}"
  experiments+=("$name=$EXP/$name")
  for fold_steps in $STEPS; do
    fold=${fold_steps%%:*}
    run="$EXP/$name/$fold"
    manifests="$DATA/folds/$fold"
    mkdir -p "$run"
    (
      OMP_NUM_THREADS=1 python3 -m asr.train data=manifest data.train_manifest="$manifests/train.jsonl" \
        data.dev_manifest="$manifests/dev.jsonl" trainer.max_time_minutes=null \
        trainer.max_steps="${fold_steps#*:}" trainer.progress=false trainer.precision=fp32 \
        data.num_workers=1 \
        hydra.run.dir="$run" model=small_8k optim.warmup_steps=100 "${overrides[@]}"
      OMP_NUM_THREADS=1 python3 -m asr.evaluate model="$run/checkpoints/best.pt" \
        manifest="$manifests/test.jsonl" decoder=greedy output="$run/test_greedy.json"
    ) > "$run.log" 2>&1 &
  done
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
python3 recipes/fsdd/results.py --ablation "${experiments[@]}"
exit $failed
