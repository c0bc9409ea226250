"""Bad data is found before training: every kind of problem, the CLI, and the training policy."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.ctc.alignment import ctc_frames_needed
from asr.data.manifest import read_manifest, write_manifest
from asr.data.validate import ValidateConfig, find_problems, model_for
from asr.errors import UserError
from asr.train.loop import run
from tests.test_train import losses, train_config

RATE = 16000


def speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture
def bad_manifest(tmp_path) -> tuple[Path, list[str | None]]:
    """A manifest with one utterance per problem; returns it and the kind expected for each line."""
    rows, kinds = [], []

    def add(name, text, kind, audio=None, duration=1.0, **write):
        if audio is not None:
            soundfile.write(tmp_path / name, audio, RATE, **write)
        rows.append({"audio_filepath": name, "duration": duration, "text": text})
        kinds.append(kind)

    add("good.wav", "hello world", None, speechlike(1.0))
    add("missing.wav", "hello", "missing")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(200)))
    add("corrupt.flac", "hello", "unreadable")
    add("empty.wav", "hello", "empty", np.zeros(0, np.float32))
    add("silent.wav", "hello", "silent", np.zeros(RATE, np.float32))
    add("nan.wav", "hello", "non-finite", np.full(RATE, np.nan, np.float32), subtype="FLOAT")
    add("long.wav", "hello", "duration", speechlike(2.0), duration=1.0)
    add("digits.wav", "room 101", "characters", speechlike(1.0))
    add("short.wav", "a transcript far too long for a fifth of a second", "too-short", speechlike(0.2), 0.2)
    add("zero.wav", "hello", "duration", speechlike(1.0), duration=0)  # a bad line, not a bad manifest
    add("negative.wav", "hello", "duration", speechlike(1.0), duration=-1.5)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest, kinds


def test_every_kind_of_bad_utterance_is_found_with_its_line(bad_manifest):
    manifest, kinds = bad_manifest
    model, tokenizer = model_for(ValidateConfig(manifest=str(manifest)))
    problems = find_problems(read_manifest(manifest), tokenizer, model, progress=False)
    assert {p.index: p.kind for p in problems} == {i: k for i, k in enumerate(kinds) if k is not None}
    assert [str(p).split(": ")[0] for p in problems] == [f"{manifest}:{i + 1}" for i in range(1, len(kinds))]
    assert "manifest says 1.00 s but the audio has 2.00 s" in str(problems[5])
    lenient = find_problems(read_manifest(manifest), tokenizer, model, check_length=False, progress=False)
    assert "too-short" not in {p.kind for p in lenient} and len(lenient) == len(problems) - 1


def test_ctc_needs_a_blank_between_repeated_labels():
    assert ctc_frames_needed([1, 2, 3]) == 3
    assert ctc_frames_needed([1, 1, 2, 2, 2]) == 8


def test_cli_lists_problems_and_writes_the_good_utterances(bad_manifest, tmp_path):
    manifest, kinds = bad_manifest
    output = tmp_path / "clean.jsonl"
    asr_validate = Path(sys.executable).parent / "asr-validate"
    result = subprocess.run([asr_validate, f"manifest={manifest}", f"output={output}"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.count("manifest.jsonl:") == len(kinds) - 1 + 1  # each problem + the summary
    assert "1 of 11 utterances good" in result.stdout and "1 too-short" in result.stdout
    assert [utt.audio_filepath.name for utt in read_manifest(output)] == ["good.wav"]


def test_training_stops_on_bad_data_or_skips_it_when_asked(tiny_corpus, tmp_path, capsys):
    utterances = read_manifest(tiny_corpus / "manifests" / "train.jsonl")
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, [*utterances[1:], replace(utterances[0], audio_filepath=tmp_path / "gone.flac")])
    with pytest.raises(UserError, match=r"1 bad utterance\(s\) of 12 \(1 missing\).*on_bad_sample=skip"):
        run(train_config(tiny_corpus, f"data.train_manifest={manifest}"), tmp_path / "stop")
    assert "train.jsonl:12: gone.flac: no such audio file" in capsys.readouterr().err
    state = run(train_config(tiny_corpus, f"data.train_manifest={manifest}", "data.on_bad_sample=skip",
                             "trainer.max_epochs=1", "data.batch_size=11"), tmp_path / "skip")  # fmt: skip
    assert state.step == 1 and losses(tmp_path / "skip")
