"""FSDD connected digits: recordings checked, pools that share no recording, speaker-disjoint folds,
synthetic voices in the training sets only, the release downloaded over HTTP and only the four
speakers kept."""

import hashlib
import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data import fsdd
from asr.data.manifest import read_manifest
from asr.errors import UserError
from tests.http_server import serve

SMALL = {"train": 6, "dev": 3, "test": 4}


def fake_recordings(folder: Path, speakers=fsdd.SPEAKERS) -> str:
    """FSDD-named recordings (each a 0.1 s tone whose pitch encodes digit and index); their
    checksum as ``find_recordings`` computes it."""
    folder.mkdir(parents=True)
    rows = []
    for speaker in speakers:
        for digit in range(10):
            for index in range(fsdd.INDICES):
                path = folder / f"{digit}_{speaker}_{index}.wav"
                tone = np.sin(np.arange(800) * (0.05 + 0.01 * digit + 0.0001 * index)) * 0.3
                soundfile.write(path, tone.astype(np.float32), fsdd.SAMPLE_RATE, subtype="PCM_16")
                rows.append((path.name, hashlib.sha256(path.read_bytes()).hexdigest()))
    lines = "".join(
        f"{digest}  {name}\n" for name, digest in sorted(rows) if name.split("_")[1] in fsdd.SPEAKERS
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdd") / "recordings"
    return folder, fake_recordings(folder)


def test_folds_are_speaker_disjoint_and_pools_share_no_recording(recordings, tmp_path):
    folder, checksum = recordings
    fsdd.prepare(folder, tmp_path, expected_sha256=checksum, pools=SMALL)
    for held_out in fsdd.SPEAKERS:
        fold = {split: read_manifest(tmp_path / "folds" / held_out / f"{split}.jsonl") for split in SMALL}
        assert [len(fold[split]) for split in SMALL] == [6 * 3, 3 * 3, 4]
        speakers = {split: {u.audio_filepath.parent.parent.name for u in fold[split]} for split in SMALL}
        assert speakers["test"] == {held_out} and held_out not in speakers["train"] | speakers["dev"]
        for split in SMALL:  # the manifests name each utterance's speaker, for per-speaker statistics
            assert all(u.speaker == u.audio_filepath.parent.parent.name for u in fold[split])
        for utterance in fold["test"]:
            words = utterance.text.split()
            assert 1 <= len(words) <= 7 and set(words) <= set(fsdd.WORDS)
            audio, rate = soundfile.read(utterance.audio_filepath)
            assert rate == fsdd.SAMPLE_RATE and len(audio) / rate == pytest.approx(
                utterance.duration, abs=1e-4
            )
    all_recordings = fsdd.find_recordings(folder, checksum)
    for speaker in fsdd.SPEAKERS:
        pools = fsdd.pool_sources(all_recordings, speaker)
        assert not {r.path for r in pools["train"]} & {r.path for r in pools["dev"]}
        assert {r.speaker for pool in pools.values() for r in pool} == {speaker}
        assert len(pools["dev"]) == 10 * len(fsdd.DEV_INDICES) and len(pools["test"]) == 10 * fsdd.INDICES


def test_synthetic_voices_join_every_training_set_and_nothing_else(recordings, tmp_path, monkeypatch):
    folder, checksum = recordings
    drawn_from = []  # the speakers of the recordings each utterance was drawn from
    connect = fsdd.connect
    monkeypatch.setattr(
        fsdd,
        "connect",
        lambda sources, *rest: drawn_from.append({r.speaker for r in sources}) or connect(sources, *rest),
    )
    fsdd.prepare(folder, tmp_path / "a", expected_sha256=checksum, pools=SMALL, synthetic_voices=2)
    # each synthetic utterance is one voice's, as a real speaker's is: SYNTHETIC_UTTERANCES per voice
    synthetic_draws = [speakers for speakers in drawn_from if not speakers & set(fsdd.SPEAKERS)]
    assert (
        synthetic_draws == [{"synth0"}] * fsdd.SYNTHETIC_UTTERANCES + [{"synth1"}] * fsdd.SYNTHETIC_UTTERANCES
    )
    monkeypatch.undo()
    synthetic = None
    for held_out in fsdd.SPEAKERS:
        fold = {split: read_manifest(tmp_path / "a/folds" / held_out / f"{split}.jsonl") for split in SMALL}
        added = [
            (u.audio_filepath.resolve(), u.text)
            for u in fold["train"]
            if "synthetic" in u.audio_filepath.parts
        ]
        assert len(fold["train"]) == 6 * 3 + len(added) and len(added) == 2 * fsdd.SYNTHETIC_UTTERANCES
        assert synthetic in (None, added)  # the same utterances in every fold
        synthetic = added
        assert not any("synthetic" in u.audio_filepath.parts for u in fold["dev"] + fold["test"])
    voices = sorted((tmp_path / "a/synthetic_recordings").glob("*.wav"))
    assert len(voices) == 2 * 10 * 5  # two voices, ten digits, five times each
    for path in voices[::10]:
        audio, rate = soundfile.read(path)
        # a spoken digit, trimmed of silence: a few tenths of a second, loud at both ends
        assert rate == fsdd.SAMPLE_RATE and 0.15 < len(audio) / rate < 1.2
        loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max()) / rate
        assert loud[0] < 0.05 and loud[-1] > len(audio) / rate - 0.05
    for path, text in synthetic[:5]:
        assert set(text.split()) <= set(fsdd.WORDS) and soundfile.info(path).samplerate == fsdd.SAMPLE_RATE
    # the same seed gives the same audio and manifests
    fsdd.prepare(folder, tmp_path / "b", expected_sha256=checksum, pools=SMALL, synthetic_voices=2)
    for path in voices + [(tmp_path / "a/folds/lucas/train.jsonl")]:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    # other parameters make the folder anew, with nothing of the synthetic voices left
    fsdd.prepare(folder, tmp_path / "a", expected_sha256=checksum, pools=SMALL, synthetic_voices=0)
    assert len(read_manifest(tmp_path / "a/folds/george/train.jsonl")) == 6 * 3
    assert (
        not (tmp_path / "a/synthetic_recordings").exists() and not (tmp_path / "a/audio/synthetic").exists()
    )
    for bad in (-1, len(fsdd.VOICE_PAIRS) + 1):
        with pytest.raises(UserError, match="synthetic-voices"):
            fsdd.prepare(folder, tmp_path / "c", expected_sha256=checksum, pools=SMALL, synthetic_voices=bad)
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_connected_digits_are_the_recordings_with_pauses_and_quiet_noise(recordings):
    folder, checksum = recordings
    chosen = fsdd.find_recordings(folder, checksum)[:1]  # always the same recording: "zero"
    quiet = fsdd.Mixing(level_db=(0.0, 0.0), snr_db=(40.0, 40.0))
    audio, text = fsdd.connect(chosen, np.random.default_rng(0), quiet)
    words = text.split()
    assert set(words) == {"zero"}
    digit, _ = soundfile.read(chosen[0].path, dtype="float32")
    # as long as the digits plus pauses and edges within their ranges
    low = len(words) * len(digit) + (len(words) - 1) * 0.05 * 8000 + 2 * 0.05 * 8000
    high = len(words) * len(digit) + (len(words) - 1) * 0.4 * 8000 + 2 * 0.3 * 8000
    assert low - 2 <= len(audio) <= high + 2
    correlation = np.correlate(audio, digit, mode="valid") / np.dot(digit, digit)
    assert (correlation > 0.95).sum() >= len(words)  # each digit is in there, nearly untouched


def test_missing_or_changed_recordings_are_named(recordings, tmp_path):
    folder, checksum = recordings
    with pytest.raises(UserError, match="missing"):
        fsdd.find_recordings(tmp_path, checksum)
    with pytest.raises(UserError, match="differ from FSDD"):
        fsdd.find_recordings(folder, "0" * 64)
    assert fsdd.find_recordings(folder.parent, checksum) == fsdd.find_recordings(
        folder, checksum
    )  # its parent


def test_download_keeps_the_four_speakers_and_verifies_them(recordings, tmp_path):
    # The release archive as GitHub serves it: a top folder with recordings/ (six speakers) and more.
    folder, checksum = recordings
    top = tmp_path / "tree" / f"free-spoken-digit-dataset-{fsdd.RELEASE[1:]}"
    extra = top / "recordings"
    fake_recordings(extra, speakers=("theo",))
    for path in folder.iterdir():
        (extra / path.name).write_bytes(path.read_bytes())
    (top / "README.md").write_text("FSDD")
    archive = tmp_path / "mirror" / "release.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    with serve(archive.parent) as (url, behaviour):
        kept = fsdd.fetch(tmp_path / "download", f"{url}/release.tar.gz", checksum)
        assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in folder.iterdir())
        assert fsdd.fetch(tmp_path / "download", f"{url}/release.tar.gz", checksum) == kept
        assert len(behaviour.requests) == 1  # verified recordings are not fetched again
        with pytest.raises(UserError, match="differ from FSDD"):
            fsdd.fetch(tmp_path / "other", f"{url}/release.tar.gz", "0" * 64)


def load_results_script(name: str = "results"):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / f"recipes/fsdd/{name}.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    return results


def test_average_subsets_rules_pick_checkpoints_as_keep_best_does():
    # (step, dev WER): steps 2 and 3 tie at 0; the trainer keeps the earlier first.
    rules = load_results_script("average_subsets").rules([(1, 0.5), (2, 0.0), (3, 0.0), (4, 0.2)])
    assert rules["best 1"] == [2] and rules["best 3"] == [2, 3, 4]
    assert rules["best 3, ties later"] == [3, 2, 4]
    assert rules["best 5"] == [2, 3, 4, 1] and rules["last 5"] == [4, 3, 2, 1]


def test_recipe_results_table(tmp_path):
    # recipes/fsdd/results.py over hand-made run directories: each fold and the mean.
    results = load_results_script()
    for fold, wer in zip(fsdd.SPEAKERS, (0.1, 0.2, 0.3, 0.4), strict=True):
        run = tmp_path / fold
        run.mkdir()
        (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "dev/wer": wer / 2}) + "\n")
        for decoder, factor in (("greedy", 1.0), ("beam_lm", 0.5), ("greedy_speakers", 0.1)):
            summary = {"wer": wer * factor, "cer": wer / 3, "num_utterances": 300}
            (run / f"test_{decoder}.json").write_text(json.dumps(summary))
    table = results.fold_table(tmp_path, list(fsdd.SPEAKERS))
    assert "| **mean** | **25.0%** |" in table and "| lucas | 30.0% |" in table and "**12.5%**" in table
    # the same checkpoints recognised another way (test_greedy_speakers.json): EXP@speakers
    rows = results.ablation_table({"a": tmp_path, "b": f"{tmp_path}@speakers"}, list(fsdd.SPEAKERS))
    assert "| a | **25.0%** | 10.0% | 20.0% | 30.0% | 40.0% | 12.5% |" in rows
    assert "| b | **2.5%** | 1.0% | 2.0% | 3.0% | 4.0% | – |" in rows
    exp, suffix = results.split_tag(f"{tmp_path}@speakers")
    assert (exp, suffix) == (tmp_path, "_speakers")
    assert "| **mean** | **2.5%** |" in results.fold_table(exp, list(fsdd.SPEAKERS), suffix)
    for decoder in ("greedy", "beam_lm"):  # a fold still training: no mean, and no traceback
        (tmp_path / "lucas" / f"test_{decoder}.json").unlink()
    rows = results.ablation_table({"a": tmp_path}, list(fsdd.SPEAKERS))
    assert "| a | **–** | 10.0% | 20.0% | – | 40.0% | – |" in rows


def test_recipe_results_count_misspelt_digits(tmp_path):
    results = load_results_script()
    rows = [  # asr-eval's per-utterance lines: one misspelt digit, one wrong digit, one deletion
        {"ref": "one two", "hyp": "one tvo", "substitutions": 1, "deletions": 0, "insertions": 0},
        {"ref": "four three", "hyp": "three three", "substitutions": 1, "deletions": 0, "insertions": 0},
        {"ref": "five", "hyp": "", "substitutions": 0, "deletions": 1, "insertions": 0},
    ]
    path = tmp_path / "test_greedy.utterances.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert results.non_word_share(path) == pytest.approx(1 / 3)


def test_recipe_results_by_utterance_length(tmp_path):
    results = load_results_script()
    rows = [  # two folds' asr-eval lines: errors pooled over the folds, per number of digits
        [{"words": 1, "substitutions": 1, "deletions": 0, "insertions": 0},
         {"words": 5, "substitutions": 0, "deletions": 1, "insertions": 0}],
        [{"words": 1, "substitutions": 0, "deletions": 0, "insertions": 0},
         {"words": 4, "substitutions": 1, "deletions": 0, "insertions": 1},
         {"words": 2, "substitutions": 0, "deletions": 0, "insertions": 0}],
    ]  # fmt: skip
    for fold, lines in zip(("george", "lucas"), rows, strict=True):
        (tmp_path / fold).mkdir()
        text = "".join(json.dumps(row) + "\n" for row in lines)
        (tmp_path / fold / "test_greedy.utterances.jsonl").write_text(text)
    table = results.length_table({"run": tmp_path}, ["george", "lucas"])
    # 1 digit: 1 error in 2 words; 2: none; 3: no utterances; 4-7: 3 errors in 9 words
    assert "| run | 50.0% | 0.0% | – | 33.3% |" in table
