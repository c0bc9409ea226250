import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data.download import download, extract
from asr.data.librispeech import split_utterances
from asr.data.manifest import read_manifest
from asr.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = {"dev-clean": {"84-121123": ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"]},
               "test-clean": {"1089-134686": ["HE HOPED THERE WOULD BE STEW FOR DINNER"]}}  # fmt: skip


def make_fake_librispeech(folder: Path) -> dict[str, Path]:
    """Archives shaped like LibriSpeech's: LibriSpeech/<split>/<spk>/<ch>/<spk>-<ch>-<utt>.flac."""
    archives = {}
    for split, chapters in TRANSCRIPTS.items():
        for chapter_id, lines in chapters.items():
            speaker, chapter = chapter_id.split("-")
            chapter_dir = folder / "tree" / "LibriSpeech" / split / speaker / chapter
            chapter_dir.mkdir(parents=True)
            rows = []
            for index, text in enumerate(lines):
                utt = f"{chapter_id}-{index:04d}"
                soundfile.write(chapter_dir / f"{utt}.flac", np.zeros(16000 * (index + 1), np.float32), 16000)
                rows.append(f"{utt} {text}\n")
            (chapter_dir / f"{chapter_id}.trans.txt").write_text("".join(rows))
        archive = folder / "mirror" / f"{split}.tar.gz"
        archive.parent.mkdir(exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder / "tree" / "LibriSpeech" / split, arcname=f"LibriSpeech/{split}")
        archives[split] = archive
    return archives


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_from_file_url_verifies_and_resumes(tmp_path):
    archive = make_fake_librispeech(tmp_path)["dev-clean"]
    target = tmp_path / "archives" / "dev-clean.tar.gz"
    partial = target.with_name(target.name + ".part")
    partial.parent.mkdir()
    partial.write_bytes(b"stale partial bytes")  # a file:// server cannot resume: it must start over
    download(archive.as_uri(), target, sha256(archive))
    assert target.read_bytes() == archive.read_bytes() and not partial.exists()
    download("file:///nonexistent/never-fetched", target, sha256(archive))  # verified file is kept

    with pytest.raises(UserError, match="checksum mismatch"):
        download(archive.as_uri(), tmp_path / "other.tar.gz", "0" * 64)
    assert not (tmp_path / "other.tar.gz").exists() and not (tmp_path / "other.tar.gz.part").exists()
    with pytest.raises(UserError, match="download failed"):
        download((tmp_path / "missing.tar.gz").as_uri(), tmp_path / "missing.tar.gz", None)


def test_extract_and_manifest(tmp_path):
    archives = make_fake_librispeech(tmp_path)
    extract(archives["dev-clean"], tmp_path / "data")
    utterances = split_utterances(tmp_path / "data" / "LibriSpeech" / "dev-clean")
    assert [u.text for u in utterances] == ["go do you hear", "but in less than five minutes"]
    assert [u.duration for u in utterances] == [1.0, 2.0]
    with pytest.raises(UserError, match="not a LibriSpeech split"):
        split_utterances(tmp_path)


def test_prepare_script_runs_resumable_stages(tmp_path):
    archives = make_fake_librispeech(tmp_path)
    checksums = tmp_path / "SHA256SUMS"
    checksums.write_text("".join(f"{sha256(path)}  {path.name}\n" for path in archives.values()))
    env = {**os.environ, "DATA": str(tmp_path / "data"), "SPLITS": "dev-clean test-clean",
           "BASE_URL": (tmp_path / "mirror").as_uri(), "CHECKSUMS": str(checksums),
           "PYTHON": sys.executable}  # fmt: skip
    script = REPO / "recipes" / "librispeech" / "prepare.sh"
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 0, first.stderr
    manifest = read_manifest(tmp_path / "data" / "manifests" / "test-clean.jsonl")
    assert [u.text for u in manifest] == ["he hoped there would be stew for dinner"]
    assert manifest[0].audio_filepath.is_file()

    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True, cwd=REPO)
    assert second.returncode == 0 and second.stdout.count("done already") == 3
    again = subprocess.run(
        ["bash", script, "--stage", "3"],
        env={**env, "SPLITS": "nope"},
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert again.returncode == 0 and "stage 3 (manifests): done already" in again.stdout
