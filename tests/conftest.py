"""Shared fixtures, made once per test session: a tiny built-in corpus, a model trained on it by
the console script; and ``cli``, which runs a console script as a user does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asr.data.synthetic import CorpusSpec, generate_corpus

BIN = Path(sys.executable).parent
TINY_MODEL = ["model.n_mels=32", "model.conv_channels=[8,8]", "model.rnn_hidden=32", "model.rnn_layers=1"]
TINY = CorpusSpec(seed=3, train_speakers=3, dev_speakers=1, test_speakers=1, utterances_per_speaker=4)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Root of a 20-utterance corpus with ``manifests/{train,dev,test}.jsonl``."""
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, TINY)
    return root


def cli(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="session")
def trained(tiny_corpus, tmp_path_factory) -> Path:
    """Run directory of a 4-step ``asr-train`` of a tiny model on ``tiny_corpus``."""
    run_dir = tmp_path_factory.mktemp("run")
    result = cli(
        "asr-train", "data=manifest", f"data.train_manifest={tiny_corpus}/manifests/train.jsonl",
        f"data.dev_manifest={tiny_corpus}/manifests/dev.jsonl", "data.batch_size=4", "trainer.max_steps=4",
        "trainer.progress=false", *TINY_MODEL, f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return run_dir
