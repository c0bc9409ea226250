"""Character tokenizer: blank = 0, then space, a-z and the apostrophe."""

from __future__ import annotations

import string
from collections.abc import Sequence

BLANK = "<blank>"


class UnknownCharacterError(ValueError):
    """The text holds a character that has no token."""


class CharTokenizer:
    """Maps normalised text to token ids and back; ``id 0`` is the CTC blank."""

    def __init__(self, characters: Sequence[str] = (" ", *string.ascii_lowercase, "'")) -> None:
        self.tokens: list[str] = [BLANK, *characters]
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self._ids})
        if unknown:
            raise UnknownCharacterError(f"characters not in the vocabulary: {''.join(unknown)!r}")
        return [self._ids[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids (blanks already removed) to text."""
        return "".join(self.tokens[i] for i in ids if i != self.blank)

    def to_dict(self) -> dict:
        return {"type": "char", "tokens": self.tokens}

    @classmethod
    def from_dict(cls, state: dict) -> CharTokenizer:
        if state.get("type") != "char" or state["tokens"][0] != BLANK:
            raise ValueError(f"not a character tokenizer: {state.get('type')!r}")
        return cls(state["tokens"][1:])
