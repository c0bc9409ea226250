"""Any corpus lhotse prepares (``lhotse prepare <corpus> ...``: LibriSpeech, Common Voice,
TED-LIUM, GigaSpeech and about 50 more) as our manifests: lhotse's recording and supervision
manifests (or cut manifests) become one JSON-lines manifest per part, a line per supervision
(audio file, offset, duration, normalised text).

    python -m asr.data.lhotse LHOTSE_DIR OUT_DIR     # e.g. after: lhotse prepare librispeech ...
    asr-train data=manifest data.train_manifest=OUT_DIR/train-clean-100.jsonl ...

lhotse's JSON-lines files are read directly, so lhotse itself need not be installed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from asr.data.manifest import Utterance, write_manifest
from asr.errors import UserError, exit_on_user_error
from asr.text import normalize_text

_PAIR = re.compile(r"^(?P<prefix>.+)_(?P<kind>recordings|supervisions|cuts)_(?P<part>.+)\.jsonl(\.gz)?$")


def _rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.strip()]
    except (OSError, EOFError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a readable lhotse manifest ({error})") from None


def _audio_path(recording: dict, where: Path) -> Path:
    sources = recording.get("sources") or []
    if len(sources) != 1 or sources[0].get("type") != "file":
        raise UserError(f"{where}: recording {recording.get('id')} is not a single audio file")
    return Path(sources[0]["source"])


def _utterance(supervision: dict, recording: dict, where: Path) -> Utterance:
    text = normalize_text(supervision.get("text") or "")
    return Utterance(_audio_path(recording, where), float(supervision["duration"]), text,
                     float(supervision.get("start", 0.0)), f"{where}:{supervision['id']}",
                     str(supervision.get("speaker") or ""))  # fmt: skip


def convert(folder: Path, out: Path) -> dict[str, int]:
    """Write ``out/<part>.jsonl`` for every part in ``folder``; returns the utterances per part."""
    parts: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if match := _PAIR.match(path.name):
            parts.setdefault(match["part"], {})[match["kind"]] = path
    if not parts:
        raise UserError(f"{folder}: no lhotse manifests (*_recordings_*, *_supervisions_*, *_cuts_*)")
    counts = {}
    for part, files in parts.items():
        utterances = []
        if "recordings" in files and "supervisions" in files:
            recordings = {row["id"]: row for row in _rows(files["recordings"])}
            for supervision in _rows(files["supervisions"]):
                if supervision["recording_id"] not in recordings:
                    raise UserError(
                        f"{files['supervisions']}: {supervision['id']} names recording "
                        f"{supervision['recording_id']}, which {files['recordings'].name} does not have"
                    )
                recording = recordings[supervision["recording_id"]]
                utterances.append(_utterance(supervision, recording, files["supervisions"]))
        elif "cuts" in files:
            for cut in _rows(files["cuts"]):
                for supervision in cut.get("supervisions", []):
                    utterances.append(_utterance(supervision, cut["recording"], files["cuts"]))
        else:
            raise UserError(f"{folder}: part {part} has {', '.join(files)} only")
        write_manifest(out / f"{part}.jsonl", utterances)
        counts[part] = len(utterances)
    return counts


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asr.data.lhotse", description=__doc__.splitlines()[0])
    parser.add_argument("lhotse_dir", type=Path, help="where lhotse prepare wrote its manifests")
    parser.add_argument("out", type=Path, help="folder for <part>.jsonl")
    args = parser.parse_args(argv)
    for part, count in convert(args.lhotse_dir, args.out).items():
        print(f"{part}: {count} utterances -> {args.out / f'{part}.jsonl'}")


if __name__ == "__main__":
    main()
