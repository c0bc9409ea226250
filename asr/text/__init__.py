"""Text normalisation and tokenizers."""

from asr.text.normalize import normalize_text
from asr.text.tokenizer import CharTokenizer, UnknownCharacterError

__all__ = ["CharTokenizer", "UnknownCharacterError", "normalize_text"]
