import hashlib
import json
import multiprocessing
import time
from dataclasses import replace

from asr.data.espeak import Voice
from asr.data.manifest import read_manifest
from asr.data.sentences import SentenceGenerator, vocabulary
from asr.data.synthetic import CorpusSpec, _Speaker, _synthesize_speaker, assign_voices, generate_corpus
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
    generate_corpus(again, replace(TINY, dev_speakers=2, utterances_per_speaker=2))
    generate_corpus(again, TINY)  # other parameters: nothing of the first corpus may remain
    assert tree_digest(again) == tree_digest(tiny_corpus)
    assert len(read_manifest(again / "manifests" / "dev.jsonl")) == 4


def test_corpus_carries_espeak_word_start_times(tiny_corpus):
    utterances = read_manifest(tiny_corpus / "manifests" / "test.jsonl")
    rows = [json.loads(line) for line in (tiny_corpus / "alignments" / "test.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [utt.audio_filepath.stem for utt in utterances]
    for utt, row in zip(utterances, rows, strict=True):
        words, starts = [w for w, _ in row["words"]], [t for _, t in row["words"]]
        assert set(words) <= set(normalize_text(utt.text).split()) and len(words) >= len(utt.text.split()) - 2
        assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] < utt.duration


def tree_digest(root) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.glob("*/*/*/*")))).hexdigest()


def test_breathy_voices_are_reproducible(tmp_path):
    # "+f2" is a breathy variant: espeak-ng draws noise for it, from a clock-seeded generator
    # unless the synthesiser seeds it.
    speaker = _Speaker(1000, "train", Voice("en", "f2", 178, 41), tmp_path / "train", 16000,
                       [("the breathy voice is here", Voice("en", "f2", 178, 41))])  # fmt: skip
    audio = []
    for _ in range(2):
        with multiprocessing.get_context("fork").Pool(1) as pool:
            pool.apply(_synthesize_speaker, (speaker,))
        audio.append((tmp_path / "train" / "1000" / "10000" / "1000-10000-0000.flac").read_bytes())
        time.sleep(1.1)  # another second on the clock
    assert audio[0] == audio[1]


def split_files(root, split) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / split).glob("*/*/*"))}


def test_more_or_fewer_training_utterances_leave_dev_and_test_as_they_were(tiny_corpus, tmp_path):
    base_train = split_files(tiny_corpus, "train")
    for count in (6, 2):
        root = tmp_path / str(count)
        generate_corpus(root, replace(TINY, train_utterances_per_speaker=count))
        for split in ("dev", "test"):
            assert split_files(root, split) == split_files(tiny_corpus, split)
            assert (root / "manifests" / f"{split}.jsonl").read_text().replace(str(root), "") == (
                tiny_corpus / "manifests" / f"{split}.jsonl"
            ).read_text().replace(str(tiny_corpus), "")
        train = split_files(root, "train")
        audio = {name: data for name, data in train.items() if name.endswith(".flac")}
        assert len(audio) == TINY.train_speakers * count
        first = min(count, TINY.utterances_per_speaker)
        kept = [name for name in audio if int(name.split("-")[2][:4]) < first]
        assert all(audio[name] == base_train[name] for name in kept), "the first utterances are the same"
        texts = {line.split(" ", 1)[1] for name, data in train.items() if name.endswith(".txt")
                 for line in data.decode().splitlines()}  # fmt: skip
        assert len(texts) == TINY.train_speakers * count, "new sentences, not repeats"
    assert "train_utterances_per_speaker" not in json.loads((tiny_corpus / "corpus.json").read_text())
