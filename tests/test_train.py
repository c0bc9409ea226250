import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import soundfile
import torch
from hydra import compose, initialize_config_dir

from asr.checkpoint import load_checkpoint
from asr.configs import CONFIG_DIR
from asr.ctc import get_backend, register_backend
from asr.errors import UserError
from asr.text import tokenizer_from_dict
from asr.train.builders import DECAYS, Schedule
from asr.train.config import register_schema
from asr.train.loop import run
from tests.conftest import TINY_MODEL


def overrides(corpus, *extra):
    return [
        "data=manifest", f"data.train_manifest={corpus}/manifests/train.jsonl",
        f"data.dev_manifest={corpus}/manifests/dev.jsonl", "data.batch_size=4", "trainer.progress=false",
        "optim.warmup_steps=2", *TINY_MODEL, *extra,
    ]  # fmt: skip


def train_config(corpus, *extra):
    register_schema()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides(corpus, *extra))


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["train/loss"] for row in rows if "train/loss" in row}


def test_resume_continues_with_the_same_losses(tiny_corpus, tmp_path):
    # 12 training utterances in batches of 4: 3 steps an epoch, so step 4 resumes in epoch 1.
    common = ["optim.decay_steps=6", "trainer.eval_every_steps=4"]
    whole = tmp_path / "whole"
    run(train_config(tiny_corpus, "trainer.max_steps=6", *common), whole)
    parts = tmp_path / "parts"
    state = run(train_config(tiny_corpus, "trainer.max_steps=4", *common), parts)
    checkpoint = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)
    assert state.step == 4 and checkpoint["sampler"] == {"epoch": 1, "steps": 1}
    run(train_config(tiny_corpus, "trainer.max_steps=6", "trainer.resume=true", *common), parts)
    expected, resumed = losses(whole), losses(parts)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (5, 6):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5)


def test_run_writes_checkpoints_metrics_and_config(tiny_corpus, tmp_path):
    state = run(train_config(tiny_corpus, "trainer.max_epochs=1"), tmp_path)
    assert state.step == 3
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["train_state"]["step"] == 3 and checkpoint["sampler"] == {"epoch": 1, "steps": 0}
    assert {"optimizer", "scheduler", "scaler", "rng", "config"} <= checkpoint.keys()
    assert checkpoint["model_dims"]["rnn_hidden"] == 32 and checkpoint["tokenizer"]["type"] == "char"
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "config.yaml").is_file() and list((tmp_path / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "dev/wer" in row] == [3]
    assert not list((tmp_path / "checkpoints").glob(".*")), "temporary files left behind"
    # The speed logged at the end: one epoch, so the audio per step is the training set's over 3.
    (speed,) = [row for row in rows if "train/audio_seconds_per_second" in row]
    utterances = [
        json.loads(line) for line in (tiny_corpus / "manifests" / "train.jsonl").read_text().splitlines()
    ]
    audio = sum(soundfile.info(tiny_corpus / "manifests" / u["audio_filepath"]).duration for u in utterances)
    per_step = speed["train/audio_seconds_per_second"] / speed["train/steps_per_second"]
    assert per_step == pytest.approx(audio / 3, rel=1e-4)


CTC_ERRORS: list[tuple[float, float]] = []


@register_backend("custom_checked")
def custom_checked_against_float64(log_probs, targets, input_lengths, target_lengths, blank=0, **kwargs):
    """The custom backend, and for every batch its distance from torch's CTC in float64 on the same
    log-probs: (largest relative loss error, largest gradient error), in CTC_ERRORS."""
    args = (targets, input_lengths, target_lengths)
    results = []
    for backend, dtype in (("native", torch.float64), ("custom", torch.float32)):
        x = log_probs.detach().to(dtype).requires_grad_()
        losses = get_backend(backend)(x, *args, blank=blank, reduction="none", zero_infinity=True)
        results.append((losses.detach().double(), torch.autograd.grad(losses.sum(), x)[0].double()))
    (reference, reference_grad), (ours, grad) = results
    CTC_ERRORS.append(
        (
            ((ours - reference).abs() / reference.clamp(min=1e-6)).max().item(),
            (grad - reference_grad).abs().max().item(),
        )
    )
    return get_backend("custom")(log_probs, *args, blank=blank, **kwargs)


@pytest.mark.slow
def test_custom_ctc_trains_like_native_from_a_blank_peaky_model(tiny_corpus, tmp_path):
    # The small model after 60 steps puts nearly all its mass on the blank (CTC's first phase): the
    # regime in which the probability-space kernel this replaced lost 4 of the next 30 steps to
    # NaN. From that checkpoint, 30 steps with each backend: no step skipped; on every batch the
    # custom loss and gradient within 1e-5 of torch's CTC in float64; the same losses as native
    # for the first steps (later the two runs drift apart as any two trainings do whose gradients
    # differ by float rounding, here by 0.4% after 30 steps). In float32: bf16, auto's choice on
    # a CPU with native bf16, makes them drift from the first steps.
    common = ["data=manifest", f"data.train_manifest={tiny_corpus}/manifests/train.jsonl",
              f"data.dev_manifest={tiny_corpus}/manifests/dev.jsonl", "data.batch_size=4",
              "trainer.progress=false", "optim.warmup_steps=5", "trainer.max_epochs=1000",
              "trainer.eval_every_steps=1000", "optim.decay_steps=1000", "trainer.keep_best=1",
              "trainer.precision=fp32"]  # fmt: skip
    register_schema()
    CTC_ERRORS.clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        run(compose("train", overrides=[*common, "trainer.max_steps=60"]), tmp_path / "base")
        runs = {}
        for backend in ("native", "custom_checked"):
            shutil.copytree(tmp_path / "base", tmp_path / backend)
            overrides = [*common, f"ctc.backend={backend}", "trainer.max_steps=90", "trainer.resume=true"]
            assert run(compose("train", overrides=overrides), tmp_path / backend).skipped_steps == 0
            runs[backend] = [losses(tmp_path / backend)[step] for step in range(61, 91)]
    assert len(CTC_ERRORS) == 30 and max(loss for loss, _ in CTC_ERRORS) <= 1e-5
    assert max(grad for _, grad in CTC_ERRORS) <= 1e-5
    assert runs["custom_checked"][:5] == pytest.approx(runs["native"][:5], rel=1e-5)


def test_bf16_autocast_trains(tiny_corpus, tmp_path):
    run(train_config(tiny_corpus, "trainer.precision=bf16", "trainer.max_steps=2"), tmp_path)
    assert all(math.isfinite(loss) for loss in losses(tmp_path).values())


def test_warmup_then_cosine_by_steps_or_by_the_clock():
    by_steps = Schedule(warmup_steps=4, total_steps=20, budget=math.inf, min_ratio=0.1)
    factors = [by_steps(step) for step in range(25)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False))
    assert factors[20] == pytest.approx(0.1) and factors[24] == pytest.approx(0.1)
    by_time = Schedule(warmup_steps=4, total_steps=math.inf, budget=100.0, min_ratio=0.1)
    by_time.elapsed = 50.0  # half the budget: half way down the cosine, whatever the step
    assert by_time(1000) == pytest.approx(0.55)
    by_time.elapsed = 100.0
    assert by_time(10) == pytest.approx(0.1)
    by_steps.budget, by_steps.elapsed = 100.0, 75.0  # the clock is ahead of the steps: it decides
    assert by_steps(10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.75)))


def test_schedules_and_optimisers_come_from_registries(tiny_corpus, tmp_path):
    linear = Schedule(warmup_steps=0, total_steps=10, budget=math.inf, min_ratio=0.0, decay=DECAYS["linear"])
    assert [linear(step) for step in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    constant = Schedule(
        warmup_steps=2, total_steps=10, budget=math.inf, min_ratio=0.1, decay=DECAYS["constant"]
    )
    assert [constant(step) for step in (0, 1, 5, 10)] == pytest.approx([0.5, 1.0, 1.0, 1.0])
    run(train_config(tiny_corpus, "optim.name=sgd", "optim.schedule=linear", "trainer.max_steps=2"), tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert "momentum_buffer" in checkpoint["optimizer"]["state"][0]  # SGD's state, not Adam's
    with pytest.raises(
        UserError, match="optim.name=adamx: expected one of adamw, adam, sgd; did you mean adam"
    ):
        run(train_config(tiny_corpus, "optim.name=adamx", "trainer.max_steps=1"), tmp_path / "bad")


def test_a_time_budget_is_spent_with_the_rate_decayed_by_its_end(tiny_corpus, tmp_path, monkeypatch):
    # A clock that advances 1 s whenever it is read, so the run is the same on any machine: a
    # 40-second budget, no epoch or step limit (the 8-epoch default is then lifted).
    ticks = iter(range(10**6))
    monkeypatch.setattr("asr.train.loop.time.monotonic", lambda: float(next(ticks)))
    config = train_config(tiny_corpus, "trainer.max_time_minutes=0.6667", "trainer.eval_every_steps=1000")
    state = run(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rates = [row["train/lr"] for row in rows if "train/lr" in row]
    assert state.step > 8 * 3 and state.elapsed >= 40  # beyond 8 epochs of 3 steps
    assert rates[-1] == pytest.approx(config.optim.lr * config.optim.min_lr_ratio, rel=0.05)
    assert max(rates) == pytest.approx(config.optim.lr, rel=0.05)


def parameters(run_dir):
    """The trained parameters of a run's last.pt (BatchNorm's running statistics left out)."""
    model = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    return {
        name: value for name, value in model.items() if "running" not in name and "num_batches" not in name
    }


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_corpus, tmp_path):
    # 12 utterances in batches of 2: a step is 2 batches, one per rank or both accumulated.
    # Both runs on one thread per process, as torchrun sets it, so each batch is computed alike.
    common = ["data.batch_size=2", "trainer.max_steps=4", "trainer.device=cpu", "trainer.keep_best=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # gloo: not the hostname
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    one = [sys.executable, "-m", "asr.train", "trainer.accumulate_grad_batches=2", f"hydra.run.dir={single}"]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "asr.train", f"hydra.run.dir={ddp}"]  # fmt: skip
    for command in (one, two):
        result = subprocess.run([*command, *overrides(tiny_corpus, *common)], capture_output=True, text=True,
                                timeout=300, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert losses(ddp) == pytest.approx(losses(single), rel=1e-5) and len(losses(ddp)) == 4
    expected, got = parameters(single), parameters(ddp)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert (ddp / ".hydra" / "config.yaml").is_file() and (ddp / "train.log").is_file()


@pytest.mark.slow
def test_kill_9_then_the_same_command_continues_step_for_step(tiny_corpus, tmp_path):
    common = ["data.batch_size=2", "trainer.max_steps=30", "trainer.save_every_steps=1",
              "trainer.eval_every_steps=10", "optim.decay_steps=30"]  # fmt: skip
    whole = tmp_path / "whole"
    run(train_config(tiny_corpus, *common), whole)
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "asr.train", *overrides(tiny_corpus, *common), f"hydra.run.dir={killed}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere in the middle of a step, or of writing a checkpoint
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(last)["train_state"]["step"] < 30, "the run ended before it was killed"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout + result.stderr
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "train/loss" in row] == list(range(1, 31)), "each step once"
    assert losses(killed) == pytest.approx(losses(whole), rel=1e-5)
    assert not list((killed / "checkpoints").glob(".*")), "temporary files left behind"


def test_keeps_the_best_checkpoints_averages_them_and_stops_early(tiny_corpus, tmp_path):
    common = ["data.batch_size=2", "trainer.eval_every_steps=1", "trainer.keep_best=2"]
    state = run(train_config(tiny_corpus, *common, "trainer.max_steps=5"), tmp_path / "best")
    folder = tmp_path / "best" / "checkpoints"
    assert len(state.kept) == 2 and state.kept[0]["wer"] <= state.kept[1]["wer"]
    assert sorted(p.name for p in folder.glob("best-step*.pt")) == sorted(k["file"] for k in state.kept)
    first, second = (load_checkpoint(folder / k["file"])["model"] for k in state.kept)
    averaged = load_checkpoint(folder / "averaged.pt")
    name = "output.weight"
    torch.testing.assert_close(averaged["model"][name], (first[name] + second[name]) / 2)
    assert math.isfinite(averaged["dev_wer"])
    # lr 0: dev WER cannot improve after the first evaluation, so patience 2 stops at step 3.
    state = run(train_config(tiny_corpus, *common, "optim.lr=0", "trainer.early_stopping_patience=2",
                             "trainer.max_steps=10"), tmp_path / "early")  # fmt: skip
    assert state.early_stopped and state.step == 3 and state.evals_since_best == 2


def test_average_best_off_and_the_test_manifest_at_the_end(tiny_corpus, tmp_path, monkeypatch):
    """``trainer.average_best=false``: no averaged.pt; ``data.test_manifest``: best.pt evaluated
    on it when training ends, its WER (the same as asr-eval's) logged as test/wer. The blank
    penalty chosen on dev is saved in best.pt and used by that test: here a stand-in choice of -50,
    which leaves only blanks (CER 100%; the tiny model without it: about 94%). The choice itself
    is tested in test_ctc.py."""
    chosen = {}

    def choose(recognizer, dataset, speaker):
        chosen["utterances"] = len(dataset)
        return -50.0, {0.0: 1.0, -50.0: 1.0}

    monkeypatch.setattr("asr.train.trainer.tune_blank_penalty", choose)
    test = tiny_corpus / "manifests" / "test.jsonl"
    common = ["data.batch_size=2", "trainer.eval_every_steps=1", "trainer.max_steps=3"]
    run(
        train_config(tiny_corpus, *common, "trainer.average_best=false", f"data.test_manifest={test}"),
        tmp_path,
    )
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert not (tmp_path / "checkpoints" / "averaged.pt").exists()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (logged,) = [row for row in rows if "test/wer" in row]
    assert logged["step"] == 3
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "asr-eval"), f"model={tmp_path}/checkpoints/best.pt",
         f"manifest={test}", f"output={tmp_path}/test.json"], capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "test.json").read_text())
    assert logged["test/wer"] == pytest.approx(evaluated["wer"])
    assert chosen["utterances"] == 4, "chosen on the dev set"
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["blank_penalty"] == -50.0
    assert evaluated["blank_penalty"] == -50.0 and logged["test/cer"] == evaluated["cer"] == 1.0
    (untuned,) = [row for row in rows if "test/wer_without_blank_penalty" in row]
    (tuned,) = [row for row in rows if "dev/best_blank_penalty" in row]
    assert tuned["dev/best_blank_penalty"] == -50.0


@register_backend("nan_every_other_call")
def nan_every_other_call(log_probs, *args, **kwargs):
    nan_every_other_call.calls = getattr(nan_every_other_call, "calls", 0) + 1
    loss = torch.nn.functional.ctc_loss(log_probs, *args, **kwargs)
    return loss * float("nan") if nan_every_other_call.calls % 2 == 0 else loss


@register_backend("always_nan")
def always_nan(log_probs, *args, **kwargs):
    return torch.nn.functional.ctc_loss(log_probs, *args, **kwargs) * float("nan")


def test_non_finite_steps_are_skipped_and_counted_then_stop_the_run(tiny_corpus, tmp_path):
    state = run(
        train_config(tiny_corpus, "ctc.backend=nan_every_other_call", "trainer.max_steps=4"), tmp_path / "a"
    )
    assert state.skipped_steps == 2 and state.step == 4
    assert all(
        math.isfinite(value) for value in parameters(tmp_path / "a").values() for value in value.flatten()
    )
    assert sorted(losses(tmp_path / "a")) == [1, 3]
    with pytest.raises(UserError, match=r"3 steps in a row .* the last batch: .*train.jsonl:\d+"):
        run(train_config(tiny_corpus, "ctc.backend=always_nan", "trainer.max_bad_steps=3"), tmp_path / "b")


def test_fp16_with_loss_scaling_trains(tiny_corpus, tmp_path):
    run(train_config(tiny_corpus, "trainer.precision=fp16", "trainer.max_steps=2"), tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert checkpoint["scaler"]["scale"] > 0 and losses(tmp_path)


def test_resume_modes_protect_existing_work(tiny_corpus, tmp_path):
    run(train_config(tiny_corpus, "trainer.max_steps=1"), tmp_path)
    with pytest.raises(UserError, match="exists; continue it with trainer.resume=auto"):
        run(train_config(tiny_corpus, "trainer.max_steps=2", "trainer.resume=false"), tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        run(train_config(tiny_corpus, "trainer.resume=true"), tmp_path / "fresh")
    with pytest.raises(UserError, match="other settings"):
        run(train_config(tiny_corpus, "trainer.max_steps=2", "model.rnn_hidden=16"), tmp_path)
    with pytest.raises(UserError, match="trainer.accumulate_grad_batches=0: must be positive"):
        run(train_config(tiny_corpus, "trainer.accumulate_grad_batches=0"), tmp_path / "bad")
    with pytest.raises(UserError, match="data.sortagrad_epochs=-1: must be 0 or more"):
        run(train_config(tiny_corpus, "data.sortagrad_epochs=-1"), tmp_path / "bad")


def test_bpe_tokenizer_is_learnt_saved_and_reused_on_resume(tiny_corpus, tmp_path):
    run(
        train_config(tiny_corpus, "tokenizer=bpe", "tokenizer.vocab_size=60", "trainer.max_steps=2"), tmp_path
    )
    model_file = (tmp_path / "tokenizer.model").read_bytes()
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert checkpoint["tokenizer"] == {"type": "sentencepiece", "model": model_file}
    assert checkpoint["model_dims"]["vocab_size"] == len(tokenizer_from_dict(checkpoint["tokenizer"]))
    run(
        train_config(tiny_corpus, "tokenizer=bpe", "tokenizer.vocab_size=60", "trainer.max_steps=3"), tmp_path
    )
    assert sorted(losses(tmp_path)) == [1, 2, 3] and (tmp_path / "tokenizer.model").read_bytes() == model_file
