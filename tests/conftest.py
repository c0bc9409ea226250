"""Shared fixtures: a tiny built-in corpus, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.data.synthetic import CorpusSpec, generate_corpus

TINY = CorpusSpec(seed=3, train_speakers=3, dev_speakers=1, test_speakers=1, utterances_per_speaker=4)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Root of a 20-utterance corpus with ``manifests/{train,dev,test}.jsonl``."""
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, TINY)
    return root
