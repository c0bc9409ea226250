"""JSON-lines manifests in the NeMo format: ``{"audio_filepath", "duration", "text"[, "offset",
"speaker"]}``.

Relative audio paths are resolved against the manifest's folder, so a corpus and its manifests
can be moved together.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr.errors import UserError
from asr.fileio import write_jsonl


class ManifestError(UserError):
    """A manifest that cannot be read, or a line in it that is malformed."""


@dataclass(frozen=True)
class Utterance:
    audio_filepath: Path
    duration: float
    text: str
    offset: float = 0.0
    source: str = ""
    """Where the utterance was described (``manifest:line``), for error messages."""
    speaker: str = ""
    """Who speaks (any label; empty: not known), for per-speaker feature statistics."""


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """All utterances of a manifest; a malformed line raises ``ManifestError`` naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: cannot read manifest ({error})") from None
    utterances = [_parse_line(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not utterances:
        raise ManifestError(f"{path}: manifest has no utterances")
    return utterances


def _parse_line(path: Path, number: int, line: str) -> Utterance:
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    missing = [key for key in ("audio_filepath", "duration", "text") if key not in row]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    if not all(isinstance(row.get(key, ""), str) for key in ("audio_filepath", "text", "speaker")):
        raise ManifestError(f"{where}: audio_filepath, text and speaker must be strings")
    try:
        duration, offset = float(row["duration"]), float(row.get("offset", 0.0))
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: duration and offset must be numbers") from None
    if not (math.isfinite(duration) and offset >= 0):
        raise ManifestError(f"{where}: duration must be finite and offset not negative")
    audio = Path(row["audio_filepath"])
    if not audio.is_absolute():
        audio = path.parent / audio
    return Utterance(audio, duration, row["text"], offset, where, row.get("speaker", ""))


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Write atomically, with audio paths relative to the manifest's folder."""
    folder = Path(path).parent.resolve()

    def row(utt: Utterance) -> dict:
        entry = {
            "audio_filepath": os.path.relpath(utt.audio_filepath.resolve(), folder),
            "duration": round(utt.duration, 4),
            "text": utt.text,
        }
        if utt.offset:
            entry["offset"] = utt.offset
        if utt.speaker:
            entry["speaker"] = utt.speaker
        return entry

    write_jsonl(path, (row(utt) for utt in utterances))
