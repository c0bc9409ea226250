import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from asr.train.cli import CONFIG_DIR
from asr.train.config import register_schema
from asr.train.loop import run, warmup_cosine

TINY_MODEL = ["model.n_mels=32", "model.conv_channels=[8,8]", "model.rnn_hidden=32", "model.rnn_layers=1"]


def train_config(corpus, *overrides):
    register_schema()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=[
            "data=manifest", f"data.train_manifest={corpus}/manifests/train.jsonl",
            f"data.dev_manifest={corpus}/manifests/dev.jsonl", "data.batch_size=4", "trainer.progress=false",
            "optim.warmup_steps=2", *TINY_MODEL, *overrides,
        ])  # fmt: skip


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
    assert state.step == 4 and checkpoint["sampler"] == {"epoch": 1, "position": 1}
    run(train_config(tiny_corpus, "trainer.max_steps=6", "trainer.resume=true", *common), parts)
    expected, resumed = losses(whole), losses(parts)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (5, 6):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5)


def test_run_writes_checkpoints_metrics_and_config(tiny_corpus, tmp_path):
    state = run(train_config(tiny_corpus, "trainer.max_epochs=1"), tmp_path)
    assert state.step == 3
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["train_state"]["step"] == 3 and checkpoint["sampler"] == {"epoch": 1, "position": 0}
    assert {"optimizer", "scheduler", "scaler", "rng", "config"} <= checkpoint.keys()
    assert checkpoint["model_dims"]["rnn_hidden"] == 32 and checkpoint["tokenizer"]["type"] == "char"
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "config.yaml").is_file() and list((tmp_path / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "dev/wer" in row] == [3]
    assert not list((tmp_path / "checkpoints").glob(".*")), "temporary files left behind"


def test_custom_ctc_backend_trains_like_native(tiny_corpus, tmp_path):
    runs = {}
    for backend in ("native", "custom"):
        run(train_config(tiny_corpus, f"ctc={backend}", "trainer.max_steps=3"), tmp_path / backend)
        runs[backend] = losses(tmp_path / backend)
    assert runs["custom"] == pytest.approx(runs["native"], rel=1e-4)


def test_bf16_autocast_trains(tiny_corpus, tmp_path):
    run(train_config(tiny_corpus, "trainer.precision=bf16", "trainer.max_steps=2"), tmp_path)
    assert all(math.isfinite(loss) for loss in losses(tmp_path).values())


def test_warmup_then_cosine():
    factors = [warmup_cosine(step, 4, 20, 0.1) for step in range(25)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False))
    assert factors[20] == pytest.approx(0.1) and factors[24] == pytest.approx(0.1)
