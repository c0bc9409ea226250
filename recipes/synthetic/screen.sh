#!/usr/bin/env bash
# A quick screen of demo settings on a GPU: every variant (and seed) trains at once for the steps
# that `make demo` makes in its 14.5 minutes on the 2-core CPU (STEPS), then greedy test WER of
# best.pt, as `make demo` tests, and a table. Steps, not minutes, so the GPU's speed does not
# change what is compared; a setting that changes the CPU's time per step names its own CPU step
# count (NAME@STEPS) and still needs `make demo` on the CPU to be measured.
#   recipes/synthetic/screen.sh NAME[@STEPS]="overrides" [...]   (NAME= for the defaults)
# Environment: EXP (runs/demo_screen), SEEDS ("0"; runs in EXP/NAME_s<seed>), PRECISION (bf16,
# as the bf16 CPU trains), STEPS (2779: runs/demo_f32 on the AVX512-BF16 CPU). The corpus is
# data/synthetic (`python -m asr.data.synthetic data/synthetic train_utterances_per_speaker=50`,
# the corpus asr-train makes).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$repo/.venv/bin/python" ] && PATH="$repo/.venv/bin:$PATH"  # the venv that `make setup` made
cd "$repo"
EXP=${EXP:-runs/demo_screen}
SEEDS=${SEEDS:-0}
PRECISION=${PRECISION:-bf16}
[ $# -gt 0 ] || { echo "usage: $0 NAME[@STEPS]=\"overrides\" [...]" >&2; exit 2; }

runs=()
for variant in "$@"; do
  name=${variant%%=*}
  steps=${STEPS:-2779}
  if [[ $name == *@* ]]; then steps=${name#*@}; name=${name%%@*}; fi
  read -r -a overrides <<< "${variant#*=}"
  for seed in $SEEDS; do
    run="$EXP/${name}_s$seed"
    runs+=("$run")
    mkdir -p "$run"
    (
      OMP_NUM_THREADS=1 python3 -m asr.train hydra.run.dir="$run" trainer.max_time_minutes=null \
        trainer.max_steps="$steps" trainer.progress=false trainer.precision="$PRECISION" \
        trainer.seed="$seed" data.num_workers=1 "${overrides[@]}"
      OMP_NUM_THREADS=1 python3 -m asr.evaluate model="$run/checkpoints/best.pt" \
        manifest=data/synthetic/manifests/test.jsonl output="$run/test.json"
    ) > "$run.log" 2>&1 &
  done
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
echo "| run | steps | test WER (greedy) | CER |"
echo "| --- | --- | --- | --- |"
for run in "${runs[@]}"; do
  python3 - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
steps = max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines())
test = run / "test.json"
result = json.loads(test.read_text()) if test.is_file() else {"wer": float("nan"), "cer": float("nan")}
print(f"| {run.name} | {steps} | {result['wer']:.2%} | {result['cer']:.2%} |")
PY
done
exit $failed
