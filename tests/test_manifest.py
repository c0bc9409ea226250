import json

import pytest

from asr.data.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.fileio import _umask


def test_relative_paths_resolve_against_manifest_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "m.jsonl"
    rows = [{"audio_filepath": "../a.wav", "duration": 1.5, "text": "hi"},
            {"audio_filepath": "/abs/b.wav", "duration": 2, "text": "yo", "offset": 0.5}]  # fmt: skip
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = read_manifest(manifest)
    assert first.audio_filepath.resolve() == (tmp_path / "a.wav").resolve()
    assert str(second.audio_filepath) == "/abs/b.wav" and second.offset == 0.5
    assert first.source == f"{manifest}:1"


def test_round_trip_keeps_paths_relative(tmp_path):
    utts = [Utterance(tmp_path / "audio" / "x.flac", 1.25, "some text")]
    write_manifest(tmp_path / "manifests" / "m.jsonl", utts)
    line = json.loads((tmp_path / "manifests" / "m.jsonl").read_text())
    assert line["audio_filepath"] == "../audio/x.flac"
    (back,) = read_manifest(tmp_path / "manifests" / "m.jsonl")
    assert back.audio_filepath.resolve() == utts[0].audio_filepath and back.text == "some text"
    assert "speaker" not in line and back.speaker == ""
    write_manifest(tmp_path / "s.jsonl", [Utterance(tmp_path / "x.flac", 1.0, "hi", speaker="ann")])
    assert json.loads((tmp_path / "s.jsonl").read_text())["speaker"] == "ann"
    assert read_manifest(tmp_path / "s.jsonl")[0].speaker == "ann"


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"audio_filepath": "a.wav", "text": "x"}', "missing field(s) duration"),
    ('{"audio_filepath": "a.wav", "duration": "long", "text": "x"}', "must be numbers"),
    ('{"audio_filepath": "a.wav", "duration": NaN, "text": "x"}', "duration must be finite"),
    ('{"audio_filepath": "a.wav", "duration": 1, "offset": -2, "text": "x"}', "offset not negative"),
    ('{"audio_filepath": "a.wav", "duration": 1, "text": "x", "speaker": 7}', "speaker must be strings"),
])  # fmt: skip
def test_bad_line_reports_file_and_line_number(tmp_path, line, message):
    manifest = tmp_path / "m.jsonl"
    good = json.dumps({"audio_filepath": "a.wav", "duration": 1, "text": "ok"})
    manifest.write_text(f"{good}\n{line}\n")
    with pytest.raises(ManifestError) as error:
        read_manifest(manifest)
    assert f"{manifest}:2:" in str(error.value) and message in str(error.value)


def test_missing_and_empty_manifests(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ManifestError, match="no utterances"):
        read_manifest(tmp_path / "empty.jsonl")


def test_written_files_get_the_usual_permissions(tmp_path):
    write_manifest(tmp_path / "m.jsonl", [Utterance(tmp_path / "a.wav", 1.0, "x")])
    assert (tmp_path / "m.jsonl").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]
