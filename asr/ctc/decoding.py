"""CTC decoding: greedy, and beam search with an optional n-gram language model."""

from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.errors import UserError
from asr.text import Tokenizer, normalize_text


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0, blank_penalty: float = 0.0
) -> list[list[int]]:
    """Best token per frame, repeats merged, blanks dropped; ``blank_penalty`` is taken from the
    blank's log-prob first (``FrameChoices``).

    ``log_probs``: ``(batch, time, vocab)``; ``lengths``: ``(batch,)`` valid frames.
    """
    return FrameChoices.of(log_probs, lengths, blank).decode(blank_penalty)


@dataclass
class FrameChoices:
    """What greedy decoding needs of each frame at any blank penalty: the best non-blank token and
    the blank's log-prob minus that token's (``margin``). A frame is blank where ``margin`` is at
    least the penalty. A penalty undoes a model's lean to blank, which drops whole tokens (``asr-train``
    tunes it on dev, ``asr.evaluate.tune_blank_penalty``), as icefall's ``--blank-penalty`` does."""

    margin: torch.Tensor
    """``(batch, time)``"""
    token: torch.Tensor
    """``(batch, time)``"""
    lengths: list[int]
    blank: int

    @classmethod
    def of(cls, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> FrameChoices:
        others = log_probs.detach().float().cpu().clone()
        blank_scores = others[..., blank].clone()
        others[..., blank] = -torch.inf
        best, token = others.max(dim=-1)
        return cls(blank_scores - best, token, lengths.tolist(), blank)

    def paths(self, blank_penalty: float = 0.0) -> torch.Tensor:
        """Each frame's choice ``(batch, time)``, repeats not merged."""
        return torch.where(self.margin >= blank_penalty, self.blank, self.token)

    def decode(self, blank_penalty: float = 0.0) -> list[list[int]]:
        hypotheses = []
        for path, length in zip(self.paths(blank_penalty), self.lengths, strict=True):
            path = torch.unique_consecutive(path[:length])
            hypotheses.append(path[path != self.blank].tolist())
        return hypotheses


class GreedyDecoder:
    """Log-probs ``(batch, time, vocab)`` and frame counts to texts, by ``greedy_decode``."""

    def __init__(self, tokenizer: Tokenizer, blank_penalty: float = 0.0) -> None:
        self.tokenizer = tokenizer
        self.blank_penalty = blank_penalty

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return self.texts(FrameChoices.of(log_probs, lengths, self.tokenizer.blank))

    def texts(self, choices: FrameChoices) -> list[str]:
        return [self.tokenizer.decode(ids) for ids in choices.decode(self.blank_penalty)]


@dataclass(frozen=True)
class BeamSettings:
    beam_size: int = 50
    beam_threshold: float = 25.0
    """Hypotheses scoring this far below the best are pruned."""
    lm_weight: float = 1.0
    """alpha: weight of the language model's log-probability."""
    word_score: float = 0.0
    """beta: bonus added for every word (balances the LM's preference for short outputs)."""


class BeamSearchDecoder:
    """CTC prefix beam search by flashlight-text through torchaudio's ``ctc_decoder``.

    Without ``lm``: lexicon-free search over tokens. With an ARPA ``lm`` (plain or ``.arpa.gz``,
    words in any case, as OpenSLR's LibriSpeech models are in upper case): words are spelled from
    the LM's vocabulary (the lexicon, case-folded to the tokenizer) and scored by the n-gram model
    (shallow fusion: ``log p_ctc + lm_weight * log p_lm + word_score * words``); the words it
    returns are normalised like transcripts.
    """

    def __init__(self, tokenizer: Tokenizer, lm: str | os.PathLike | None, settings: BeamSettings) -> None:
        from torchaudio.models.decoder import ctc_decoder

        self.tokenizer = tokenizer
        self.lexicon_dir = tempfile.TemporaryDirectory(prefix="asr-lexicon-")
        tokens, boundary = decoder_tokens(tokenizer)
        self.lexicon = None
        if lm is not None:
            self.lexicon = str(write_lexicon(lm, tokenizer, Path(self.lexicon_dir.name) / "lexicon.txt"))
        self.decoder = ctc_decoder(
            lexicon=self.lexicon, tokens=tokens, lm=None if lm is None else str(lm),
            beam_size=settings.beam_size, beam_threshold=settings.beam_threshold,
            lm_weight=settings.lm_weight, word_score=settings.word_score,
            blank_token=tokens[tokenizer.blank], sil_token=boundary,
        )  # fmt: skip

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        results = self.decoder(log_probs.detach().float().cpu().contiguous(), lengths.cpu().to(torch.int32))
        if self.lexicon:
            return [normalize_text(" ".join(best[0].words)) for best in results]
        return [" ".join(self.tokenizer.decode(best[0].tokens.tolist()).split()) for best in results]


WORD_BOUNDARY = "|"


def decoder_tokens(tokenizer: Tokenizer) -> tuple[list[str], str]:
    """flashlight's token list and its word-boundary ("silence") token: ``|`` in place of the
    space character; subword pieces mark word starts themselves, so their ``<unk>`` stands in."""
    if " " in tokenizer.tokens:
        return [WORD_BOUNDARY if token == " " else token for token in tokenizer.tokens], WORD_BOUNDARY
    return list(tokenizer.tokens), tokenizer.unknown_token


def spell(tokenizer: Tokenizer, word: str) -> list[str]:
    """A lexicon entry's tokens: characters then ``|``, or the word's subword pieces."""
    pieces = [tokenizer.tokens[i] for i in tokenizer.encode(word)]
    return [*pieces, WORD_BOUNDARY] if " " in tokenizer.tokens else pieces


def write_lexicon(lm: str | os.PathLike, tokenizer: Tokenizer, path: Path) -> Path:
    """Spell every word of an ARPA model's unigrams (``.arpa`` or ``.arpa.gz``) with ``tokenizer``'s
    tokens, after normalising it as transcripts are (so ``HELLO`` is spelled ``h e l l o``), in
    flashlight's lexicon format: ``HELLO h e l l o |``. Words it cannot spell are left out."""
    lm = Path(lm)
    if not lm.is_file():
        raise UserError(f"{lm}: no such language model")
    opener = gzip.open if lm.suffix == ".gz" else open
    try:
        with opener(lm, "rt", encoding="utf-8", errors="replace") as arpa:
            lines = _spelled_unigrams(arpa, tokenizer)
    except (OSError, EOFError) as error:
        raise UserError(f"{lm}: cannot read the language model ({error})") from None
    if not lines:
        raise UserError(f"{lm}: no unigrams the tokenizer can spell (is it an ARPA file?)")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _spelled_unigrams(arpa, tokenizer: Tokenizer) -> list[str]:
    lines = []
    in_unigrams = False
    for line in arpa:
        if line.startswith("\\"):
            in_unigrams = line.strip() == "\\1-grams:"
            continue
        fields = line.split()
        if not in_unigrams or len(fields) < 2 or fields[1].lower() in ("<s>", "</s>", "<unk>"):
            continue
        try:
            spelling = spell(tokenizer, normalize_text(fields[1]))
        except ValueError:
            continue
        if spelling and spelling != [WORD_BOUNDARY]:
            lines.append(f"{fields[1]} {' '.join(spelling)}\n")
    return lines
