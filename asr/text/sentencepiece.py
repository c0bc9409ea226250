"""Subword tokens (BPE or unigram) learnt by SentencePiece from the training transcripts."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import sentencepiece

from asr.text.tokenizer import BLANK, BaseTokenizer

WORD_START = "\u2581"
"""SentencePiece's mark at the start of every word-initial piece."""


class SentencePieceTokenizer(BaseTokenizer):
    """Same interface as ``CharTokenizer``: id 0 is the CTC blank, SentencePiece's ids follow
    shifted by one. A character never seen in training is an error, as for characters."""

    def __init__(self, model: bytes) -> None:
        self.model = model
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        size = self.processor.get_piece_size()
        pieces = [self.processor.id_to_piece(i) for i in range(size)]
        self.tokens = [BLANK, *pieces]
        ordinary = [
            p
            for i, p in enumerate(pieces)
            if not (self.processor.is_unknown(i) or self.processor.is_control(i))
        ]
        self.unknown_token = pieces[self.processor.unk_id()]
        self.characters = set("".join(ordinary).replace(WORD_START, " ")) | {" "}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "bpe") -> SentencePieceTokenizer:
        """Learn ``vocab_size`` pieces from normalised ``texts`` (deterministic, one thread)."""
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, num_threads=1,
            minloglevel=2, hard_vocab_limit=False,
        )  # fmt: skip
        return cls(model.getvalue())

    def encode(self, text: str) -> list[int]:
        self.check_characters(text)
        return [i + 1 for i in self.processor.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids (blanks already removed) to text."""
        return self.processor.decode([i - 1 for i in ids if i != self.blank])

    def to_dict(self) -> dict:
        return {"type": "sentencepiece", "model": self.model}

    @classmethod
    def from_dict(cls, state: dict) -> SentencePieceTokenizer:
        if state.get("type") != "sentencepiece":
            raise ValueError(f"not a SentencePiece tokenizer: {state.get('type')!r}")
        return cls(state["model"])
