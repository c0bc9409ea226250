"""The n-gram estimator, ARPA output, and beam search with and without the LM."""

import gzip
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.ctc.decoding import BeamSearchDecoder, BeamSettings, GreedyDecoder, write_lexicon
from asr.errors import UserError
from asr.lm.ngram import EOS, UNK, discounts, estimate
from asr.text import CharTokenizer

_rng = random.Random(0)
SUBJECTS, VERBS, OBJECTS = ["the cat", "a dog", "my friend", "the old man"], ["sees", "likes", "chased"], [
    "the ball", "a bird", "her hat", "the red car"]  # fmt: skip
SENTENCES = [
    f"{_rng.choice(SUBJECTS)} {_rng.choice(VERBS)} {_rng.choice(OBJECTS)}".split() for _ in range(400)
]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_is_a_probability_distribution(order):
    model = estimate(SENTENCES, order)
    vocabulary = [*model.vocabulary, EOS, UNK]
    contexts = [(), ("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("cat", "sees", "the"), ("zebra",),
                ("the", "zebra"), ("zebra", "sees")]  # fmt: skip
    for context in contexts:
        total = sum(10 ** model.log10_prob(word, context) for word in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-9), context


def test_seen_continuations_beat_unseen_and_context_helps():
    model = estimate(SENTENCES, 3)
    assert model.log10_prob("cat", ("<s>", "the")) > model.log10_prob("bird", ("<s>", "the"))
    assert model.log10_prob("ball", ("chased", "the")) > model.log10_prob("ball", ())
    assert model.log10_prob("zebra", ("the",)) == model.log10_prob(UNK, ("the",))

    def perplexity(m, sentences):
        logs = [m.log10_prob(w, tuple(["<s>", *s][max(0, i - 2) : i + 1])) for s in sentences
                for i, w in enumerate([*s, EOS])]  # fmt: skip
        return 10 ** (-sum(logs) / len(logs))

    held_out = [s.split() for s in ("the cat likes a bird", "my friend chased the red car")]
    assert perplexity(model, held_out) < perplexity(estimate(SENTENCES, 1), held_out) / 2


def test_discounts_follow_the_count_of_counts():
    counts = [1] * 100 + [2] * 40 + [3] * 20 + [4] * 10
    y = 100 / (100 + 2 * 40)
    assert discounts(counts) == pytest.approx(
        (1 - 2 * y * 40 / 100, 2 - 3 * y * 20 / 40, 3 - 4 * y * 10 / 20)
    )
    assert discounts([1, 1, 2]) == (0.5, 1.0, 1.5)  # too few counts: the fallback


@pytest.fixture(scope="module")
def arpa(tmp_path_factory) -> Path:
    text = tmp_path_factory.mktemp("lm") / "text.txt"
    text.write_text("\n".join(" ".join(s) for s in SENTENCES) + "\n")
    path = text.with_name("3gram.arpa")
    result = subprocess.run([Path(sys.executable).parent / "asr-build-lm", f"text={text}", f"output={path}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


def test_arpa_file_round_trips_through_the_header_counts(arpa):
    lines = arpa.read_text().splitlines()
    declared = {
        int(line.split("=")[0].split()[1]): int(line.split("=")[1])
        for line in lines
        if line.startswith("ngram ")
    }
    sections, current = {}, None
    for line in lines:
        if line.endswith("-grams:"):
            current = int(line[1])
            sections[current] = 0
        elif current and line.strip() and not line.startswith("\\"):
            sections[current] += 1
    assert declared == sections and lines[-1] == "\\end\\"


def emissions_for(text: str, tokenizer: CharTokenizer, noise: float, seed: int) -> torch.Tensor:
    """Log-probs that spell ``text`` with 3 frames a token, blurred with noise."""
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for token in tokenizer.encode(text):
        for hot in (token, token, tokenizer.blank):
            logits = torch.randn(len(tokenizer), generator=generator) * noise
            logits[hot] += 4.0
            frames.append(logits)
    return torch.stack(frames).log_softmax(-1)


def test_beam_search_with_the_lm_repairs_what_the_acoustics_blur(arpa):
    tokenizer = CharTokenizer()
    truths = [" ".join(s) for s in SENTENCES[:20]]
    emissions = [emissions_for(text, tokenizer, noise=1.6, seed=i) for i, text in enumerate(truths)]
    lengths = torch.tensor([len(e) for e in emissions])
    batch = torch.nn.utils.rnn.pad_sequence(emissions, batch_first=True)
    greedy = GreedyDecoder(tokenizer)(batch, lengths)
    beam = BeamSearchDecoder(tokenizer, None, BeamSettings())(batch, lengths)
    with_lm = BeamSearchDecoder(tokenizer, arpa, BeamSettings(lm_weight=1.0, word_score=1.0))(batch, lengths)
    errors = {name: sum(h != t for h, t in zip(hyps, truths, strict=True))
              for name, hyps in (("greedy", greedy), ("beam", beam), ("lm", with_lm))}  # fmt: skip
    assert errors["greedy"] > 5, "the test needs blurred emissions"
    assert errors["lm"] < errors["greedy"] / 3 and errors["beam"] <= errors["greedy"]


def test_an_uppercase_gzipped_arpa_as_openslr_ships_decodes_the_same(arpa, tmp_path):
    # OpenSLR's LibriSpeech LMs (3-gram.pruned.1e-7.arpa.gz) are gzipped, their words in upper case.
    shouting = tmp_path / "3-gram.arpa.gz"
    with gzip.open(shouting, "wt", encoding="utf-8") as file:
        for line in Path(arpa).read_text(encoding="utf-8").splitlines(keepends=True):
            upper = line.upper().replace("<S>", "<s>").replace("</S>", "</s>")  # <UNK> as OpenSLR's
            file.write(line if line.startswith(("\\", "ngram ")) else upper)
    tokenizer = CharTokenizer()
    truths = [" ".join(s) for s in SENTENCES[:10]]
    emissions = [emissions_for(text, tokenizer, noise=1.5, seed=i) for i, text in enumerate(truths)]
    batch = torch.nn.utils.rnn.pad_sequence(emissions, batch_first=True)
    lengths = torch.tensor([len(e) for e in emissions])
    settings = BeamSettings(lm_weight=1.0, word_score=1.0)
    expected = BeamSearchDecoder(tokenizer, arpa, settings)(batch, lengths)
    assert BeamSearchDecoder(tokenizer, shouting, settings)(batch, lengths) == expected
    lexicon = write_lexicon(shouting, tokenizer, tmp_path / "lexicon.txt").read_text().splitlines()
    assert "CAT c a t |" in lexicon and not any(line.startswith("<UNK>") for line in lexicon)
    assert sum(h == t for h, t in zip(expected, truths, strict=True)) >= 8
    (tmp_path / "broken.arpa.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError, match="cannot read the language model"):
        write_lexicon(tmp_path / "broken.arpa.gz", tokenizer, tmp_path / "lexicon.txt")


def test_lexicon_spells_the_lm_vocabulary(arpa, tmp_path):
    lexicon = write_lexicon(arpa, CharTokenizer(), tmp_path / "lexicon.txt").read_text().splitlines()
    assert "cat c a t |" in lexicon and len(lexicon) == len({w for s in SENTENCES for w in s})
    assert not any(line.split()[0] in ("<s>", "</s>", "<unk>") for line in lexicon)


def test_subword_tokens_decode_with_the_lm_and_align_to_words(arpa):
    from asr.ctc.alignment import align_words
    from asr.text import SentencePieceTokenizer

    tokenizer = SentencePieceTokenizer.train([" ".join(s) for s in SENTENCES], vocab_size=40)
    truths = [" ".join(s) for s in SENTENCES[:10]]
    emissions = [emissions_for(text, tokenizer, noise=1.6, seed=i) for i, text in enumerate(truths)]
    lengths = torch.tensor([len(e) for e in emissions])
    batch = torch.nn.utils.rnn.pad_sequence(emissions, batch_first=True)
    greedy = GreedyDecoder(tokenizer)(batch, lengths)
    with_lm = BeamSearchDecoder(tokenizer, arpa, BeamSettings(lm_weight=2.0, word_score=0.0))(batch, lengths)
    assert sum(h != t for h, t in zip(greedy, truths, strict=True)) > 3
    assert sum(h != t for h, t in zip(with_lm, truths, strict=True)) <= 2
    words = align_words(emissions[0], tokenizer.encode(truths[0]), tokenizer, frame_seconds=0.04)
    assert [w.word for w in words] == truths[0].split()
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))


def read_arpa(path: Path) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """log10 probabilities and back-off weights of an ARPA file, read by hand."""
    probs, backoffs, order = {}, {}, 0
    for line in path.read_text().splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
        elif order and line.strip() and not line.startswith("\\"):
            fields = line.split()
            ngram = tuple(fields[1 : 1 + order])
            probs[ngram] = float(fields[0])
            if len(fields) > 1 + order:
                backoffs[ngram] = float(fields[1 + order])
    return probs, backoffs


def backoff_log10(probs, backoffs, word: str, context: tuple[str, ...]) -> float:
    """The ARPA back-off rule: p(w | h) if listed, else bow(h) * p(w | h minus its first word)."""
    if (*context, word) in probs:
        return probs[(*context, word)]
    return backoffs.get(context, 0.0) + backoff_log10(probs, backoffs, word, context[1:])


def test_pruning_drops_n_grams_and_leaves_a_distribution_close_to_the_full_model(arpa, tmp_path):
    pruned = tmp_path / "pruned.arpa"
    command = [Path(sys.executable).parent / "asr-build-lm", f"text={arpa.with_name('text.txt')}",
               f"output={pruned}", "prune=3e-3"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    full, small = read_arpa(arpa), read_arpa(pruned)
    count = lambda probs, n: sum(len(ngram) == n for ngram in probs)  # noqa: E731
    assert count(small[0], 1) == count(full[0], 1) and count(small[0], 3) < count(full[0], 3) / 2
    vocabulary = [ngram[0] for ngram in small[0] if len(ngram) == 1 and ngram[0] != "<s>"]
    for context in [("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("cat", "sees")]:
        total = sum(10 ** backoff_log10(*small, word, context) for word in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-4), context  # back-off weights recomputed

    def perplexity(model):
        logs = [backoff_log10(*model, w, tuple(["<s>", *s][max(0, i - 2) : i + 1]))
                for s in SENTENCES for i, w in enumerate([*s, EOS])]  # fmt: skip
        return 10 ** (-sum(logs) / len(logs))

    assert perplexity(full) < perplexity(small) < 1.2 * perplexity(full)
