"""Text normalisation and tokenizers (characters, or SentencePiece subwords)."""

from asr.text.normalize import normalize_text
from asr.text.sentencepiece import SentencePieceTokenizer
from asr.text.tokenizer import CharTokenizer, UnknownCharacterError

Tokenizer = CharTokenizer | SentencePieceTokenizer


def tokenizer_from_dict(state: dict) -> Tokenizer:
    """The tokenizer a checkpoint holds (``to_dict``'s output)."""
    kinds = {"char": CharTokenizer, "sentencepiece": SentencePieceTokenizer}
    if state.get("type") not in kinds:
        raise ValueError(f"unknown tokenizer type {state.get('type')!r}")
    return kinds[state["type"]].from_dict(state)


__all__ = [
    "CharTokenizer", "SentencePieceTokenizer", "Tokenizer", "UnknownCharacterError", "normalize_text",
    "tokenizer_from_dict",
]  # fmt: skip
