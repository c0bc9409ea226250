#!/usr/bin/env bash
# The GPU path in one command, about 5 minutes on an H100 (README, "On a GPU"): the Triton CTC
# kernels compiled and checked against float64 at training sizes; bench_ctc (values checked, then
# timed against torch's native CUDA CTC and cuDNN, then profiled); training throughput of model=ds2
# in bf16 with either CTC backend; torchrun (NCCL) training killed with SIGKILL and resumed by the
# same command; asr-eval and asr-transcribe on CUDA. Then scripts/gpu_report.py prints the figures.
# Everything it measured lands in OUT, four files (the device tool brings back eight at most):
# gpu_check.log (every step's output), ctc_<device>.json, train_<device>.json, gpu_<device>.json.
#
#   scripts/gpu_check.sh [CHECKPOINT]      # CHECKPOINT: a demo-size model for inference
#                                          # (default: runs/demo/checkpoints/best.pt if present)
# Environment:
#   OUT            where the log and the figures go (default runs/gpu_check)
#   WHEELS         a folder of wheels to install first (the device machine has no network:
#                  ../shared/device-wheels/README.md), then the project with --no-deps
#   DEVICE         cuda (default); cpu rehearses every step at toy sizes on a machine without a GPU
#   TRAIN_MINUTES  training budget of the torchrun run (default 1.5; killed near half-way)
#   STEPS          only these steps, e.g. "bench_ctc eval" (default: all; install and environment
#                  always run): triton bench_ctc bench_train train_killed train_resumed eval transcribe
# Every step runs even if an earlier one failed; the exit status is 1 if any failed.
# Through the device tool (its machine has no network): here, `mkdir -p .device-wheels && cp
# ../shared/device-wheels/*.whl .device-wheels/` (git-ignored), then run
#   WHEELS=.device-wheels OUT=$OUT scripts/gpu_check.sh runs/demo_speech/checkpoints/best.pt
# with carry [".device-wheels", "runs/demo_speech/checkpoints/best.pt"] and a timeout under 600 s.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
DEVICE=${DEVICE:-cuda}
TRAIN_MINUTES=${TRAIN_MINUTES:-1.5}
CHECKPOINT=${1:-runs/demo/checkpoints/best.pt}
RUN=runs/gpu_check_train LOGS=runs/gpu_check_logs
rm -rf "$LOGS"
mkdir -p "$OUT" "$LOGS"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD  # the package importable even if its install fails
[ -x .venv/bin/python ] && PATH="$PWD/.venv/bin:$PATH"
failed=()
known=" triton bench_ctc bench_train train_killed train_resumed eval transcribe "
for name in ${STEPS:-}; do
  [[ $known == *" $name "* ]] || { echo "STEPS: no step $name (choose from:$known)" >&2; exit 2; }
done
train_limit=$(awk "BEGIN { print int(${TRAIN_MINUTES} * 60) + 240 }")  # the budget, start-up and tests

step() {  # step NAME COMMAND...: run, log to $LOGS/NAME.log, remember a failure
  local name=$1
  shift
  [[ -z ${STEPS:-} || " install environment $STEPS " == *" $name "* ]] || return 0
  local start=$SECONDS record=$LOGS/_steps.log  # the step timings, for gpu_check.log too
  echo "== $name: $*" | tee -a "$record"
  if "$@" >"$LOGS/$name.log" 2>&1; then
    echo "   ok in $((SECONDS - start)) s" | tee -a "$record"
  else
    echo "   FAILED in $((SECONDS - start)) s (exit $?); the end of $LOGS/$name.log:" | tee -a "$record"
    tail -n 15 "$LOGS/$name.log" | sed 's/^/   | /'
    failed+=("$name")
  fi
}

install() {
  python3 -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
}

if [ -n "${WHEELS:-}" ]; then step install install; fi
step environment bash -c 'nvidia-smi -L 2>/dev/null; python3 -c "import torch, triton; print(torch.__version__, \
torch.version.cuda, triton.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else \"no GPU\")"'

# 1. Triton kernels: compiled on a GPU (the interpreter only without one), training sizes included.
interpret=$([ "$DEVICE" = cuda ] && echo 0 || echo 1)  # Triton's CPU interpreter only without a GPU
step triton timeout 300 env TRITON_INTERPRET=$interpret python3 -m pytest -q -rs -p no:cacheprovider tests/ctc_triton_checks.py

# 2. CTC speed, after checking every backend's values against float64.
if [ "$DEVICE" = cuda ]; then
  step bench_ctc timeout 300 python3 scripts/bench_ctc.py --device cuda --repeats 20 --profile --output "$OUT/ctc_cuda.json"
else
  step bench_ctc python3 scripts/bench_ctc.py --device cpu --repeats 1 --inputs peaky --output "$OUT/ctc_cpu.json"
fi

# 3. Training throughput, native vs custom CTC on the same batches (makes the built-in corpus).
if [ "$DEVICE" = cuda ]; then
  step bench_train timeout 400 python3 scripts/bench_train.py --model ds2 --precision bf16 --steps 30 --device cuda \
    --output "$OUT/train_cuda.json"
else
  step bench_train python3 scripts/bench_train.py --model small --precision fp32 --steps 5 --device cpu \
    --output "$OUT/train_cpu.json"
fi

# 4. torchrun training, killed once a checkpoint exists and resumed by the same command.
model=ds2 precision=bf16 save_every=50
[ "$DEVICE" = cuda ] || { model=small precision=fp32 save_every=10; }
train=(torchrun --standalone --nproc_per_node=1 -m asr.train model=$model trainer.device="$DEVICE"
  trainer.precision=$precision ctc=custom trainer.max_time_minutes="$TRAIN_MINUTES"
  trainer.save_every_steps=$save_every trainer.progress=false trainer.keep_best=1 hydra.run.dir=$RUN)
kill_after_checkpoint() {  # start, wait for last.pt and 10 more steps, kill -9 torchrun and its workers
  rm -rf "$RUN"
  setsid "${train[@]}" &
  local pid=$! deadline=$((SECONDS + 240))  # a hung start must not eat the lease
  until [ -f "$RUN/checkpoints/last.pt" ] || [ $SECONDS -gt $deadline ] || ! kill -0 $pid 2>/dev/null; do
    sleep 1
  done
  local saved
  saved=$(wc -l <"$RUN/metrics.jsonl")
  deadline=$((SECONDS + 120))  # ten more steps
  until [ "$(wc -l <"$RUN/metrics.jsonl")" -ge $((saved + 10)) ] || [ $SECONDS -gt $deadline ] ||
    ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
  local worker  # torchrun starts each worker in a session of its own
  for worker in $(pgrep -P $pid); do kill -9 -- -"$worker"; done
  kill -9 -- -$pid
  wait $pid
  cp "$RUN/metrics.jsonl" "$RUN/metrics.killed.jsonl"
  [ -f "$RUN/checkpoints/last.pt" ]
}
step train_killed kill_after_checkpoint
step train_resumed timeout -k 10 "$train_limit" "${train[@]}"

# 5. Inference on the device: WER and real-time factor of the test set, and one file.
[ -f "$CHECKPOINT" ] || CHECKPOINT=$RUN/checkpoints/best.pt
step eval timeout 180 asr-eval model="$CHECKPOINT" manifest=data/synthetic/manifests/test.jsonl device="$DEVICE" \
  output="$LOGS/eval.json"
step transcribe timeout 120 asr-transcribe model="$CHECKPOINT" device="$DEVICE" \
  data/synthetic/test/3000/30000/3000-30000-0000.flac

for log in "$LOGS"/*.log; do echo "===== $(basename "$log" .log)"; cat "$log"; done >"$OUT/gpu_check.log"
python3 scripts/gpu_report.py --device "$DEVICE" --out "$OUT" --run "$RUN" --eval "$LOGS/eval.json" \
  --triton "$LOGS/triton.log" --failed "${failed[@]}"
[ ${#failed[@]} -eq 0 ]
