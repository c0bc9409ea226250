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
from tests.http_server import serve

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


def test_download_from_file_url_verifies_and_restarts(tmp_path):
    archive = make_fake_librispeech(tmp_path)["dev-clean"]
    target = tmp_path / "archives" / "dev-clean.tar.gz"
    partial = target.with_name(target.name + ".part")
    partial.parent.mkdir()
    partial.write_bytes(b"stale partial bytes")  # a file:// URL cannot resume: it starts over
    download(archive.as_uri(), target, sha256(archive))
    assert target.read_bytes() == archive.read_bytes() and not partial.exists()
    download("file:///nonexistent/never-fetched", target, sha256(archive))  # verified file is kept


def test_download_over_http_resumes_recovers_and_never_loops(tmp_path):
    payload = bytes(range(256)) * 4000  # 1 MB
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "a.tar.gz").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "out" / "a.tar.gz"
    partial = target.with_name("a.tar.gz.part")
    target.parent.mkdir()
    with serve(tmp_path / "mirror") as (url, server):
        # An earlier run's partial file: resumed with a Range request.
        partial.write_bytes(payload[:300_000])
        download(f"{url}/a.tar.gz", target, digest)
        assert target.read_bytes() == payload and server.requests == ["/a.tar.gz bytes=300000-"]
        # The connection drops half way: resumed within the same call.
        target.unlink()
        server.requests.clear()
        server.drop_after = 500_000
        download(f"{url}/a.tar.gz", target, digest)
        assert target.read_bytes() == payload and server.requests == [
            "/a.tar.gz -",
            "/a.tar.gz bytes=500000-",
        ]
        # A whole .part left by a kill during the checksum: the server answers 416; it is verified.
        target.unlink()
        server.requests.clear()
        partial.write_bytes(payload)
        download(f"{url}/a.tar.gz", target, digest)
        assert target.read_bytes() == payload and server.requests == [f"/a.tar.gz bytes={len(payload)}-"]
        # A whole but bad .part: 416, checksum mismatch, fetched once more from the start.
        target.unlink()
        server.requests.clear()
        partial.write_bytes(b"x" * len(payload))
        download(f"{url}/a.tar.gz", target, digest)
        assert target.read_bytes() == payload
        assert server.requests == [f"/a.tar.gz bytes={len(payload)}-", "/a.tar.gz -"]
        # A corrupt archive on the server: refused once, deleted, no second try.
        target.unlink()
        server.requests.clear()
        server.corrupt = True
        with pytest.raises(UserError, match="checksum mismatch .* the download was deleted"):
            download(f"{url}/a.tar.gz", target, digest)
        assert not target.exists() and not partial.exists() and len(server.requests) == 1
        with pytest.raises(UserError, match="answered 404"):
            download(f"{url}/missing.tar.gz", tmp_path / "out" / "missing.tar.gz", None)
    # The server is gone: a bounded number of tries, then how to go on.
    with pytest.raises(UserError, match="download failed 3 times"):
        download(f"{url}/a.tar.gz", tmp_path / "out" / "b.tar.gz", digest)


def test_extract_and_manifest(tmp_path):
    archives = make_fake_librispeech(tmp_path)
    extract(archives["dev-clean"], tmp_path / "data")
    utterances = split_utterances(tmp_path / "data" / "LibriSpeech" / "dev-clean")
    assert [u.text for u in utterances] == ["go do you hear", "but in less than five minutes"]
    assert [u.duration for u in utterances] == [1.0, 2.0]
    assert [u.speaker for u in utterances] == [u.audio_filepath.parent.parent.name for u in utterances]
    with pytest.raises(UserError, match="not a LibriSpeech split"):
        split_utterances(tmp_path)


def test_prepare_script_runs_resumable_stages_per_split(tmp_path):
    archives = make_fake_librispeech(tmp_path)
    checksums = tmp_path / "SHA256SUMS"
    checksums.write_text("".join(f"{sha256(path)}  {path.name}\n" for path in archives.values()))
    env = {**os.environ, "DATA": str(tmp_path / "data"), "SPLITS": "dev-clean",
           "BASE_URL": (tmp_path / "mirror").as_uri(), "CHECKSUMS": str(checksums),
           "PYTHON": sys.executable}  # fmt: skip
    script = REPO / "recipes" / "librispeech" / "prepare.sh"

    def prepare(splits: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", script, *args], env={**env, "SPLITS": splits}, capture_output=True,
                                text=True, cwd=REPO)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result

    first = prepare("dev-clean")
    assert first.stdout.count("done already") == 0
    # A split added later: only its stages run.
    second = prepare("dev-clean test-clean")
    assert second.stdout.count("done already") == 3 and "stage 3 (manifests test-clean)" in second.stdout
    manifest = read_manifest(tmp_path / "data" / "manifests" / "test-clean.jsonl")
    assert [u.text for u in manifest] == ["he hoped there would be stew for dinner"]
    assert manifest[0].audio_filepath.is_file()
    assert prepare("dev-clean test-clean", "--stage", "3").stdout.count("done already") == 2
