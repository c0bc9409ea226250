#!/usr/bin/env bash
# A quick screen of settings on a GPU: every variant's four folds (and seeds) train at once, each
# for the number of steps that its fold trains in run.sh's 8 minutes on the 2-core CPU (STEPS),
# then the greedy test WER of averaged.pt (best.pt where a run kept too few to average), as run.sh
# tests, and one table (results.py --ablation), a row per variant and seed. Steps, not minutes, so
# the GPU's speed does not change what is compared; a setting that changes the CPU's time per step
# still needs run.sh on the CPU to be measured.
#   recipes/fsdd/screen.sh NAME="overrides" [NAME="overrides" ...]   (NAME= for the defaults)
# Environment: DATA (data/fsdd; prepared, with speakers in its manifests), EXP (runs/fsdd_screen),
# SEEDS ("0"; each seed's runs in EXP/NAME_s<seed>), PRECISION (bf16, as the bf16 CPU trains),
# STEPS ("fold:steps ...", default the steps of runs/fsdd_k20 on the AVX512-BF16 CPU).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
DATA=${DATA:-data/fsdd}
EXP=${EXP:-runs/fsdd_screen}
SEEDS=${SEEDS:-0}
PRECISION=${PRECISION:-bf16}
STEPS=${STEPS:-"george:3366 jackson:3593 lucas:3578 yweweler:3325"}
[ $# -gt 0 ] || { echo "usage: $0 NAME=\"overrides\" [...]" >&2; exit 2; }
folds=()
for fold_steps in $STEPS; do folds+=("${fold_steps%%:*}"); done

experiments=()
for variant in "$@"; do
  name=${variant%%=*}
  read -r -a overrides <<< "${variant#*=}"
  for seed in $SEEDS; do
    experiments+=("${name}_s$seed=$EXP/${name}_s$seed")
    for fold_steps in $STEPS; do
      fold=${fold_steps%%:*}
      run="$EXP/${name}_s$seed/$fold"
      manifests="$DATA/folds/$fold"
      mkdir -p "$run"
      (
        OMP_NUM_THREADS=1 python3 -m asr.train data=manifest data.train_manifest="$manifests/train.jsonl" \
          data.dev_manifest="$manifests/dev.jsonl" trainer.max_time_minutes=null \
          trainer.max_steps="${fold_steps#*:}" trainer.progress=false trainer.precision="$PRECISION" \
          trainer.seed="$seed" data.num_workers=0 \
          hydra.run.dir="$run" model=small_8k optim.warmup_steps=100 "${overrides[@]}"
        checkpoint="$run/checkpoints/averaged.pt"
        [ -f "$checkpoint" ] || checkpoint="$run/checkpoints/best.pt"
        OMP_NUM_THREADS=1 python3 -m asr.evaluate model="$checkpoint" \
          manifest="$manifests/test.jsonl" decoder=greedy output="$run/test_greedy.json"
      ) > "$run.log" 2>&1 &
    done
  done
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
python3 recipes/fsdd/results.py --ablation "${experiments[@]}" --folds "${folds[@]}"
exit $failed
