"""Data stages that run before training, each a no-op when its output is already there: the
built-in corpus synthesised, subword pieces learnt from the training transcripts."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from asr.data.manifest import read_manifest
from asr.data.synthetic import CorpusSpec, generate_corpus
from asr.fileio import atomic_path
from asr.text import SentencePieceTokenizer, normalize_text

log = logging.getLogger(__name__)


def synthesise_if_missing(settings) -> None:
    """``data.synthetic`` (a ``CorpusSpec`` plus its ``root``): the corpus, unless it is there."""
    spec = CorpusSpec(**{f.name: settings[f.name] for f in dataclasses.fields(CorpusSpec)})
    generate_corpus(Path(settings.root), spec)


def learn_pieces(manifest: str, model_type: str, vocab_size: int, path: Path) -> None:
    """``path``: a SentencePiece model of ``vocab_size`` pieces learnt from ``manifest``'s
    transcripts, unless it exists (a resumed run keeps its pieces)."""
    if path.is_file():
        return
    texts = [normalize_text(utt.text) for utt in read_manifest(manifest)]
    model = SentencePieceTokenizer.train(texts, vocab_size, model_type).model
    with atomic_path(path) as temp:
        temp.write_bytes(model)
    log.info("learnt %d %s pieces from %d transcripts -> %s", vocab_size, model_type, len(texts), path)
