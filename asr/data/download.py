"""Fetching corpora: resumable, checksummed downloads and safe extraction."""

from __future__ import annotations

import hashlib
import http.client
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


class _Interrupted(Exception):
    """The connection failed or closed early: worth another try from where it stopped."""


def _fetch(url: str, partial: Path) -> None:
    """Append the rest of ``url`` to ``partial`` (all of it if the server ignores the range);
    returns once everything the server promised arrived, or the server says (416) that the range
    starts at or past the end, that is, ``partial`` is already whole."""
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and done:
            return
        raise UserError(f"{url}: the server answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _Interrupted(error) from None
    with response:
        resumed = response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {done}-"):
            partial.unlink()  # not the range asked for: start again from the beginning
            raise _Interrupted(f"the server answered a range other than bytes {done}-")
        expected = int(response.headers.get("Content-Length") or -1)
        received = 0
        start = done if resumed else 0
        total = None if expected < 0 else start + expected
        name = partial.name.removesuffix(".part")
        with (
            open(partial, "ab" if resumed else "wb") as file,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=name) as bar,
        ):
            try:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    file.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as error:
                raise _Interrupted(error) from None
        if 0 <= expected != received:
            raise _Interrupted(f"the connection closed after {received} of {expected} bytes")


def download(url: str, destination: Path, sha256: str | None, attempts: int = 3) -> Path:
    """Fetch ``url`` to ``destination`` through ``<destination>.part``, then verify it.

    A finished, verified file is not fetched again. An existing ``.part`` is resumed with a Range
    request; a dropped connection is resumed the same way, ``attempts`` times in all; a ``.part``
    that is already whole (the server answers 416) is verified like any download. A checksum
    mismatch deletes the file: if it came from an earlier run's ``.part``, the file is fetched once
    more from the start, else (or if that fails too) a one-line error says so. Never a loop.
    """
    if destination.is_file() and (sha256 is None or sha256sum(destination) == sha256):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    from_earlier_run = partial.exists()
    for fresh_start in (False, True):
        for attempt in range(1, attempts + 1):
            try:
                _fetch(url, partial)
                break
            except _Interrupted as error:
                if attempt == attempts:
                    size = partial.stat().st_size if partial.exists() else 0
                    raise UserError(
                        f"{url}: download failed {attempts} times ({error}); run again to resume "
                        f"from the {size} bytes in {partial}"
                    ) from None
        if sha256 is None or (actual := sha256sum(partial)) == sha256:
            os.replace(partial, destination)
            return destination
        partial.unlink()
        if fresh_start or not from_earlier_run:
            raise UserError(
                f"{url}: checksum mismatch (sha256 {actual}, expected {sha256}); the download was deleted"
            )
    raise AssertionError("unreachable")


def extract(archive: Path, destination: Path) -> None:
    """Unpack a ``.tar.gz`` into ``destination`` (through a temporary folder, then renamed in).
    Members that are links, devices or that would land outside the folder are refused, as
    ``tarfile``'s "data" filter does (done by hand on the Pythons before 3.10.12 that lack it)."""
    destination.mkdir(parents=True, exist_ok=True)
    staging = destination / f".extract-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:
                tar.extractall(staging, members=_safe_members(tar, archive))
    except (tarfile.TarError, OSError, EOFError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{archive}: cannot extract ({error})") from None
    for entry in staging.rglob("*"):
        target = destination / entry.relative_to(staging)
        if entry.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(entry, target)
    shutil.rmtree(staging)


def _safe_members(tar: tarfile.TarFile, archive: Path):
    for member in tar:
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"unsafe member {member.name!r}")
        yield member
