"""Fetching corpora: resumable, checksummed downloads and safe extraction."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from asr.errors import UserError

_CHUNK = 1 << 20


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


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
