"""Transcript normalisation shared by training, evaluation and corpus preparation."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
# Punctuation becomes a word boundary; apostrophes stay inside words ("don't").
_PUNCTUATION = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, fold accents, drop punctuation and collapse whitespace.

    Letters outside a-z that have no ASCII base (digits, other scripts) are kept so that the
    tokenizer can report them rather than silently changing the words.
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = _PUNCTUATION.sub(" ", text)
    words = [word.strip("'") for word in _SPACES.split(text)]
    return " ".join(word for word in words if word)
