import hashlib

from asr.data.manifest import read_manifest
from asr.data.sentences import SentenceGenerator, vocabulary
from asr.data.synthetic import CorpusSpec, assign_voices, generate_corpus
from asr.text import CharTokenizer, normalize_text
from tests.conftest import TINY


def test_vocabulary_is_large_and_sentences_use_it():
    words = vocabulary()
    assert len(words) >= 1000
    generator = SentenceGenerator(seed=1)
    used = {word for _ in range(3000) for word in generator.sentence().split()}
    assert used <= words and len(used) > 900


def test_sentences_are_deterministic_by_seed_and_tokenizable():
    assert SentenceGenerator(7).sentence() == SentenceGenerator(7).sentence()
    assert SentenceGenerator(7).sentence() != SentenceGenerator(8).sentence()
    tokenizer = CharTokenizer()
    generator = SentenceGenerator(0)
    for _ in range(200):
        sentence = generator.sentence()
        assert normalize_text(sentence) == sentence
        tokenizer.encode(sentence)


def test_speakers_are_disjoint_across_splits():
    voices = assign_voices(CorpusSpec(train_speakers=100, dev_speakers=10, test_speakers=10))
    names = {split: {voice.espeak_name for voice in group} for split, group in voices.items()}
    assert len(names["train"]) == 100
    assert not names["train"] & names["dev"] and not names["train"] & names["test"]
    assert not names["dev"] & names["test"]


def test_corpus_layout_and_determinism(tiny_corpus, tmp_path):
    flacs = sorted(tiny_corpus.glob("*/*/*/*.flac"))
    assert len(flacs) == 20
    assert {path.relative_to(tiny_corpus).parts[0] for path in flacs} == {"train", "dev", "test"}
    speaker, chapter, utt = flacs[0].stem.split("-")
    assert flacs[0].parent == tiny_corpus / flacs[0].relative_to(tiny_corpus).parts[0] / speaker / chapter
    assert (flacs[0].parent / f"{speaker}-{chapter}.trans.txt").is_file()
    train = read_manifest(tiny_corpus / "manifests" / "train.jsonl")
    assert len(train) == 12 and all(utt.duration > 0.5 for utt in train)

    again = tmp_path / "again"
    generate_corpus(again, TINY)
    assert tree_digest(again) == tree_digest(tiny_corpus)


def tree_digest(root) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.glob("*/*/*/*")))).hexdigest()
