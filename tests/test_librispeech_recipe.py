"""The LibriSpeech recipe end to end on a rehearsal: the built-in corpus packed as OpenSLR publishes
LibriSpeech (asr-synth as_openslr=DIR), served over real HTTP on 127.0.0.1, run by
recipes/librispeech/run.sh exactly as a user runs it (a tiny model on the CPU for 20 steps)."""

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from asr.data.manifest import read_manifest
from asr.data.rehearsal import LM_NAME, SPLITS
from tests.http_server import serve
from tests.test_train import TINY_MODEL

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rehearsal")
    command = [Path(sys.executable).parent / "asr-synth", root / "corpus", "train_speakers=4",
               "dev_speakers=2", "test_speakers=2", "utterances_per_speaker=4", "seed=5",
               f"as_openslr={root / 'openslr'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return root / "openslr"


def test_the_rehearsal_is_laid_out_as_openslr_publishes_librispeech(rehearsal):
    names = {path.name for path in rehearsal.iterdir()}
    assert {f"{split}.tar.gz" for split in SPLITS} | {LM_NAME, "md5sum.txt", "SHA256SUMS"} <= names
    with tarfile.open(rehearsal / "dev-other.tar.gz") as tar:
        members = tar.getnames()
        transcript = next(name for name in members if name.endswith(".trans.txt"))
        text = tar.extractfile(transcript).read().decode()
    for top in ("README.TXT", "LICENSE.TXT", "SPEAKERS.TXT", "CHAPTERS.TXT"):
        assert f"LibriSpeech/{top}" in members
    speaker, chapter = Path(transcript).name.removesuffix(".trans.txt").split("-")
    assert transcript == f"LibriSpeech/dev-other/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt"
    assert f"LibriSpeech/dev-other/{speaker}/{chapter}/{speaker}-{chapter}-0000.flac" in members
    assert text.split(" ", 1)[1] == text.split(" ", 1)[1].upper()
    with gzip.open(rehearsal / LM_NAME, "rt") as file:
        lm = file.read()
    assert lm.startswith("\\data\\") and "\t<s>" in lm and "THE" in lm.split("\\1-grams:")[1]


@pytest.mark.slow
def test_the_recipe_runs_end_to_end_on_the_rehearsal(rehearsal, tmp_path):
    with serve(rehearsal) as (url, server):
        env = {**os.environ, "BASE_URL": url, "CHECKSUMS": str(rehearsal / "SHA256SUMS"),
               "LM_URL": f"{url}/{LM_NAME}", "DATA": str(tmp_path / "data"), "EXP": str(tmp_path / "exp"),
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
        overrides = ["model=small", *TINY_MODEL, "trainer.device=cpu", "trainer.max_steps=20",
                     "data.batch_size=4", "trainer.progress=false", "optim.warmup_steps=5",
                     "data.on_bad_sample=skip"]  # fmt: skip
        result = subprocess.run(["bash", REPO / "recipes" / "librispeech" / "run.sh", *overrides], env=env,
                                capture_output=True, text=True, timeout=900, cwd=REPO)  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        fetched = {line.split()[0] for line in server.requests}
    assert fetched == {f"/{split}.tar.gz" for split in SPLITS} | {f"/{LM_NAME}"}
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    for split in ("test-clean", "test-other"):
        assert f"| {split} |" in results
        summary = json.loads((tmp_path / "exp" / f"{split}_beam_lm.json").read_text())
        assert summary["lm"].endswith(LM_NAME) and 0.0 <= summary["wer"] <= 2.0
    tuned = {
        dev: json.loads((tmp_path / "exp" / f"lm.{dev}.json").read_text())
        for dev in ("dev-clean", "dev-other")
    }
    assert tuned["dev-clean"]["manifest"].endswith("dev-clean.jsonl") and tuned["dev-other"]["grid"]


def test_lhotse_reads_the_rehearsal_and_its_manifests_train(rehearsal, tmp_path, monkeypatch):
    # lhotse's own LibriSpeech recipe on the extracted rehearsal (an independent check that the
    # rehearsal is laid out like LibriSpeech), its manifests converted: the same utterances as our
    # manifest builder finds, and a model trains from them.
    pytest.importorskip("lhotse")
    from asr.data.download import extract
    from asr.data.lhotse import convert
    from asr.data.librispeech import split_utterances
    from asr.train.loop import run
    from tests.test_train import train_config

    for split in SPLITS:
        extract(rehearsal / f"{split}.tar.gz", tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)  # lhotse writes the paths it is given; the converter resolves them here
    lhotse = Path(sys.executable).parent / "lhotse"
    result = subprocess.run([lhotse, "prepare", "librispeech", "corpus/LibriSpeech", "lhotse"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = convert(tmp_path / "lhotse", tmp_path / "manifests")
    assert set(counts) == set(SPLITS)
    for split in SPLITS:
        ours = split_utterances(tmp_path / "corpus" / "LibriSpeech" / split)
        theirs = read_manifest(tmp_path / "manifests" / f"{split}.jsonl")
        assert sorted((u.audio_filepath.resolve(), u.text, round(u.duration, 3)) for u in theirs) == sorted(
            (u.audio_filepath.resolve(), u.text, round(u.duration, 3)) for u in ours
        )
    corpus = tmp_path / "manifests"
    (corpus / "manifests").mkdir()
    for name, split in (("train", "train-clean-100"), ("dev", "dev-clean")):
        (corpus / "manifests" / f"{name}.jsonl").write_text((corpus / f"{split}.jsonl").read_text().replace(
            '"audio_filepath": "../', '"audio_filepath": "../../'))  # fmt: skip
    state = run(train_config(corpus, "trainer.max_steps=2", "data.on_bad_sample=skip"), tmp_path / "run")
    assert state.step == 2
