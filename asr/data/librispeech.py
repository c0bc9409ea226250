"""LibriSpeech: download (resumable, checksummed), extraction and manifests.

The same manifest builder reads the built-in synthetic corpus, which uses LibriSpeech's layout:
``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` plus ``<speaker>-<chapter>.trans.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import soundfile
from tqdm import tqdm

from asr.data.manifest import Utterance, write_manifest
from asr.errors import UserError, exit_on_user_error
from asr.text import normalize_text

BASE_URL = "https://www.openslr.org/resources/12"
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
_CHUNK = 1 << 20


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(path: Path) -> dict[str, str]:
    """``<sha256>  <split>.tar.gz`` lines (the output of ``sha256sum``) as ``{split: sha256}``."""
    try:
        lines = path.read_text().split("\n")
    except OSError as error:
        raise UserError(f"{path}: cannot read checksums ({error})") from None
    pairs = (line.split() for line in lines if line.strip())
    return {Path(name).name.removesuffix(".tar.gz"): digest for digest, name in pairs}


def download(url: str, destination: Path, sha256: str | None) -> Path:
    """Fetch ``url`` to ``destination``, resuming a partial ``.part`` file, then verify it.

    A finished, verified file is not fetched again. A checksum mismatch deletes the download and
    raises, so the next attempt starts clean.
    """
    if destination.is_file() and (sha256 is None or sha256sum(destination) == sha256):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = getattr(response, "status", None) == 206
            total = int(response.headers.get("Content-Length") or 0) + (done if resumed else 0)
            with (
                open(partial, "ab" if resumed else "wb") as file,
                tqdm(
                    total=total or None,
                    initial=done if resumed else 0,
                    unit="B",
                    unit_scale=True,
                    desc=destination.name,
                ) as bar,
            ):
                for block in iter(lambda: response.read(_CHUNK), b""):
                    file.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise UserError(f"{url}: download failed ({error}); run again to resume") from None
    if sha256 is not None and (actual := sha256sum(partial)) != sha256:
        partial.unlink()
        raise UserError(f"{url}: checksum mismatch (sha256 {actual}, expected {sha256})")
    os.replace(partial, destination)
    return destination


def extract(archive: Path, destination: Path) -> None:
    """Unpack a ``.tar.gz`` into ``destination`` (through a temporary folder, then renamed in)."""
    destination.mkdir(parents=True, exist_ok=True)
    staging = destination / f".extract-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{archive}: cannot extract ({error})") from None
    for entry in staging.rglob("*"):
        target = destination / entry.relative_to(staging)
        if entry.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(entry, target)
    shutil.rmtree(staging)


def split_utterances(split_dir: Path) -> list[Utterance]:
    """Utterances of one LibriSpeech-layout split, sorted by id, with normalised text."""
    transcripts = sorted(split_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise UserError(f"{split_dir}: no */*/*.trans.txt transcripts (not a LibriSpeech split)")
    utterances = []
    for transcript in transcripts:
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            audio = transcript.parent / f"{utt_id}.flac"
            try:
                info = soundfile.info(audio)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise UserError(f"{transcript}:{number}: cannot read {audio.name} ({error})") from None
            utterances.append(Utterance(audio, info.frames / info.samplerate, normalize_text(text)))
    return utterances


def write_split_manifest(split_dir: Path, manifest: Path) -> int:
    """Write the manifest of one split; returns its number of utterances."""
    utterances = split_utterances(split_dir)
    write_manifest(manifest, utterances)
    return len(utterances)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asr-librispeech", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download split archives (resumable, checksummed)")
    fetch.add_argument("splits", nargs="+", choices=sorted(SHA256))
    fetch.add_argument("--dest", type=Path, required=True, help="folder for the .tar.gz archives")
    fetch.add_argument("--base-url", default=BASE_URL, help="a mirror, or a file:// folder")
    fetch.add_argument("--checksums", type=Path, help="sha256sum-style list for a mirror's archives")
    unpack = commands.add_parser("extract", help="extract split archives")
    unpack.add_argument("archives", nargs="+", type=Path)
    unpack.add_argument("--dest", type=Path, required=True)
    manifests = commands.add_parser("manifest", help="write one manifest per split folder")
    manifests.add_argument("split_dirs", nargs="+", type=Path)
    manifests.add_argument("--out", type=Path, required=True, help="folder for <split>.jsonl")
    args = parser.parse_args(argv)

    if args.command == "download":
        checksums = read_checksums(args.checksums) if args.checksums else SHA256
        for split in args.splits:
            if split not in checksums:
                raise UserError(f"{args.checksums}: no checksum for {split}.tar.gz")
            download(f"{args.base_url}/{split}.tar.gz", args.dest / f"{split}.tar.gz", checksums[split])
    elif args.command == "extract":
        for archive in args.archives:
            extract(archive, args.dest)
    else:
        for split_dir in args.split_dirs:
            count = write_split_manifest(split_dir, args.out / f"{split_dir.name}.jsonl")
            print(f"{split_dir.name}: {count} utterances")


if __name__ == "__main__":
    main()
