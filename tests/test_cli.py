"""The console scripts, run as a user runs them: asr-train -> asr-eval -> asr-transcribe."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from asr.audio import load_audio
from tests.conftest import cli


def test_train_writes_run_directory(trained):
    assert (trained / "checkpoints" / "best.pt").is_file()
    assert (trained / "config.yaml").is_file() and (trained / ".hydra" / "overrides.yaml").is_file()
    steps = [json.loads(line)["step"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert steps[:4] == [1, 2, 3, 3] and steps[-1] == 4  # step 3 ends epoch 0: an evaluation


def test_eval_writes_summary_and_per_utterance_results(trained, tiny_corpus, tmp_path):
    output = tmp_path / "test.json"
    result = cli("asr-eval", f"model={trained}/checkpoints/best.pt",
                 f"manifest={tiny_corpus}/manifests/test.jsonl", f"output={output}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(output.read_text())
    assert summary["num_utterances"] == 4 and summary["cer"] >= 0 and summary["wer"] >= 0
    rows = [json.loads(line) for line in (tmp_path / "test.utterances.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"ref", "hyp", "substitutions", "deletions", "insertions"} <= set(rows[0])
    assert sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in rows) == round(
        summary["wer"] * summary["num_words"]
    )


def test_transcribe_any_rate_and_channels(trained, tiny_corpus, tmp_path):
    source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
    audio = load_audio(source, 16000)
    stereo_44k = tmp_path / "stereo.wav"
    soundfile.write(stereo_44k, np.stack([audio, audio], 1), 16000)  # stereo, then resampled below
    resampled = load_audio(stereo_44k, 44100)
    soundfile.write(stereo_44k, np.stack([resampled, resampled], 1), 44100, subtype="PCM_16")
    checkpoint = f"{trained}/checkpoints/best.pt"
    plain = cli("asr-transcribe", f"model={checkpoint}", str(source), str(stereo_44k))
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(source), str(stereo_44k)]
    as_json = cli("asr-transcribe", f"model={checkpoint}", str(source), "format=json")
    assert json.loads(as_json.stdout) == {"audio_filepath": str(source), "text": lines[0].split("\t")[1]}


def test_user_errors_are_one_line_without_traceback(trained, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    cases = [
        (cli("asr-transcribe", f"model={trained}/checkpoints/best.pt", str(tmp_path / "bad.wav")), "bad.wav"),
        (cli("asr-transcribe", f"model={tmp_path / 'none.pt'}", "x.wav"), "no such checkpoint"),
        (cli("asr-eval", "model=x.pt"), "missing required option(s): manifest=..., output=..."),
        (cli("asr-eval", "model=x.pt", "manifest=m", "output=o", "batch=3"), "did you mean batch_size?"),
        (cli("asr-train", "data=manifest", f"data.train_manifest={tmp_path}/nope.jsonl",
             "data.dev_manifest=x", f"hydra.run.dir={tmp_path}/run"), "nope.jsonl: no such manifest"),
    ]  # fmt: skip
    for result, message in cases:
        assert result.returncode != 0
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_train_config_errors_come_from_hydra(tmp_path):
    bad_value = cli("asr-train", "trainer.max_epochs=many", f"hydra.run.dir={tmp_path}")
    assert (
        bad_value.returncode != 0 and "max_epochs" in bad_value.stderr and "Traceback" not in bad_value.stderr
    )
    unknown = cli("asr-train", "trainer.epochs=3", f"hydra.run.dir={tmp_path}")
    assert unknown.returncode != 0 and "epochs" in unknown.stderr
    bad_device = cli("asr-train", "trainer.device=tpu", f"hydra.run.dir={tmp_path}")
    assert bad_device.returncode != 0 and "tpu" in bad_device.stderr
    job = cli("asr-train", "--cfg", "job", "model=ds2")
    assert job.returncode == 0 and "rnn_hidden: 1024" in job.stdout


def test_the_built_in_corpus_picks_bpe_pieces_and_other_corpora_keep_letters():
    def tokenizer(*overrides: str) -> dict:
        job = cli("asr-train", "--cfg", "job", *overrides)
        assert job.returncode == 0, job.stderr
        return yaml.safe_load(job.stdout)["tokenizer"]

    assert tokenizer() == {"type": "bpe", "vocab_size": 256}
    assert tokenizer("tokenizer=char")["type"] == "char"  # the command line still decides
    assert tokenizer("tokenizer.vocab_size=500") == {"type": "bpe", "vocab_size": 500}
    assert tokenizer("data=manifest")["type"] == "char"


def test_align_writes_ctm_measures_against_espeak_times_and_plots(trained, tiny_corpus, tmp_path):
    ctm = tmp_path / "test.ctm"
    inputs = [
        f"manifest={tiny_corpus}/manifests/test.jsonl",
        f"reference={tiny_corpus}/alignments/test.jsonl",
    ]
    result = cli("asr-align", f"model={trained}/checkpoints/best.pt", f"output={ctm}", *inputs, "plot=true")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "test.alignment.json").read_text())
    rows = [line.split() for line in ctm.read_text().splitlines()]
    texts = [
        json.loads(line)["text"]
        for line in (tiny_corpus / "manifests" / "test.jsonl").read_text().splitlines()
    ]
    assert [row[4] for row in rows] == " ".join(texts).lower().split(), (
        "every word of every transcript, in order"
    )
    assert all(float(row[2]) >= 0 and float(row[3]) >= 0 for row in rows)
    assert (
        0.8 * len(rows) < summary["words_compared"] <= len(rows)
        and summary["start_error_p90_ms"] >= summary["start_error_median_ms"]
    )
    assert len(list((tmp_path / "test.plots").glob("*.png"))) == 4


def test_transcribe_timestamps_as_json_and_srt(trained, tiny_corpus, tmp_path):
    source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
    result = cli("asr-transcribe", f"model={trained}/checkpoints/best.pt", str(source), "timestamps=true",
                 f"srt={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert " ".join(w["word"] for w in row["words"]) == " ".join(row["text"].split())
    assert all(0 <= w["start"] <= w["end"] for w in row["words"])
    subtitles = (tmp_path / f"{source.stem}.srt").read_text()
    assert (subtitles.count("-->") >= 1) == bool(row["words"])


def test_transcribe_takes_the_long_file_segmenting_settings(trained, tiny_corpus, tmp_path):
    # A file longer than chunk_seconds goes through the windows and the cutting at pauses; the
    # command line's segment settings reach the recogniser (a bad one is its one-line error).
    files = sorted(tiny_corpus.glob("*/*/*/*.flac"))[:4]
    pause = np.zeros(8000, np.float32)
    long_file = tmp_path / "long.wav"
    audio = np.concatenate([x for f in files for x in (load_audio(f, 16000), pause)])
    soundfile.write(long_file, audio, 16000)
    assert soundfile.info(long_file).duration > 6
    model = f"model={trained}/checkpoints/best.pt"
    bad = cli("asr-transcribe", model, str(long_file), "chunk_seconds=6", "segment_trim_db=-1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "segment_trim_db=-1.0" in bad.stderr
    for settings in (["segment_min_pause=0.4", "segment_margin=0.2", "segment_trim_db=0"], ["segment=false"]):
        result = cli("asr-transcribe", model, str(long_file), "chunk_seconds=6", *settings)
        assert result.returncode == 0 and result.stdout.startswith(f"{long_file}\t"), result.stderr


def test_transcribe_passes_its_segmenting_settings_to_the_recogniser(monkeypatch):
    from asr import transcribe

    seen = {}

    class Stub:
        def transcribe(self, paths, decoder, **settings):
            seen.update(settings, paths=paths)
            return []

    monkeypatch.setattr(transcribe.Recognizer, "load", lambda *args: Stub())
    transcribe.main(["model=x.pt", "a.wav", "segment=false", "segment_min_pause=0.4", "segment_margin=0.2",
                     "segment_trim_db=0"])  # fmt: skip
    assert seen["paths"] == ["a.wav"] and seen["segment"] is False
    assert (seen["segment_min_pause"], seen["segment_margin"], seen["segment_trim_db"]) == (0.4, 0.2, 0.0)
    transcribe.main(["model=x.pt", "a.wav"])  # unset: the recogniser's own defaults
    assert (seen["segment_min_pause"], seen["segment_margin"], seen["segment_trim_db"]) == (0.15, 1.0, 40.0)


def test_beam_search_decoders_and_lm_tuning(trained, tiny_corpus, tmp_path):
    checkpoint, test = f"{trained}/checkpoints/best.pt", f"manifest={tiny_corpus}/manifests/test.jsonl"
    lm = tmp_path / "lm.arpa"
    assert cli("asr-build-lm", f"text={tiny_corpus}/manifests/train.jsonl", f"output={lm}").returncode == 0
    beam = cli("asr-eval", f"model={checkpoint}", test, "decoder=beam", f"output={tmp_path}/beam.json")
    assert beam.returncode == 0, beam.stderr
    no_lm = cli("asr-eval", f"model={checkpoint}", test, "decoder=beam_lm", f"output={tmp_path}/x.json")
    assert no_lm.returncode == 2 and "decoder=beam_lm needs lm=PATH" in no_lm.stderr
    tune = cli("asr-tune-lm", f"model={checkpoint}", f"manifest={tiny_corpus}/manifests/dev.jsonl",
               f"lm={lm}", "lm_weights=[0.5,1.0]", "word_scores=[0.0]")  # fmt: skip
    assert tune.returncode == 0, tune.stderr
    tuned = json.loads((trained / "checkpoints" / "best.lm.json").read_text())
    assert len(tuned["grid"]) == 2 and tuned["lm_weight"] in (0.5, 1.0)
    with_lm = cli("asr-eval", f"model={checkpoint}", test, "decoder=beam_lm", f"output={tmp_path}/lm.json")
    assert with_lm.returncode == 0, with_lm.stderr
    summary = json.loads((tmp_path / "lm.json").read_text())
    assert summary["lm_weight"] == tuned["lm_weight"] and summary["rtf"] > summary["decoder_rtf"] > 0
    vocabulary = set(lm.read_text().split())
    hypotheses = [
        json.loads(line)["hyp"] for line in (tmp_path / "lm.utterances.jsonl").read_text().splitlines()
    ]
    assert all(word in vocabulary for hyp in hypotheses for word in hyp.split()), (
        "beam_lm spells LM words only"
    )


def test_average_and_validate_commands(trained, tiny_corpus, tmp_path):
    averaged = cli("asr-average", f"run={trained}", f"output={tmp_path}/avg.pt")
    assert averaged.returncode == 0, averaged.stderr
    assert "averaged" in averaged.stdout and (tmp_path / "avg.pt").is_file()
    assert cli("asr-average", f"output={tmp_path}/x.pt").returncode == 2
    valid = cli("asr-validate", f"manifest={tiny_corpus}/manifests/dev.jsonl")
    assert valid.returncode == 0 and "4 of 4 utterances good" in valid.stdout


@pytest.fixture(scope="module")
def artifacts(trained) -> dict[str, Path]:
    checkpoint = trained / "checkpoints" / "best.pt"
    paths = {
        "onnx": trained / "model.onnx",
        "int8": trained / "model.int8.onnx",
        "torchscript": trained / "model.ts",
    }
    for name, path in paths.items():
        fmt, quantize = ("onnx", "int8") if name == "int8" else (name, "none")
        result = cli(
            "asr-export",
            f"model={checkpoint}",
            f"format={fmt}",
            f"quantize={quantize}",
            f"output={path}",
        )
        assert result.returncode == 0, result.stderr
    return paths


def test_exported_models_match_the_checkpoint(trained, tiny_corpus, artifacts):
    import torch

    from asr import Recognizer

    eager = Recognizer.load(trained / "checkpoints" / "best.pt", "cpu")
    tokenizer = eager.tokenizer
    files = sorted(tiny_corpus.glob("*/*/*/*.flac"))[:6]
    audio = [torch.from_numpy(load_audio(path, 16000)) for path in files]
    batch = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
    lengths = torch.tensor([len(a) for a in audio])
    assert len(set(lengths.tolist())) == 6, "utterances of several lengths"
    with torch.no_grad():
        expected, expected_frames = eager.model(batch, lengths)
    for name in ("onnx", "torchscript"):
        exported = Recognizer.load(artifacts[name], "cpu")
        exported_tokenizer = exported.tokenizer
        log_probs, frames = exported.model(batch, lengths)
        assert exported.frame_seconds == eager.frame_seconds
        assert torch.equal(exported.model.output_lengths(lengths), eager.model.output_lengths(lengths))
        assert torch.equal(frames, expected_frames) and exported_tokenizer.tokens == tokenizer.tokens
        for i, n in enumerate(frames.tolist()):
            torch.testing.assert_close(log_probs[i, :n], expected[i, :n], atol=1e-4, rtol=0)
    plain = cli("asr-transcribe", f"model={trained}/checkpoints/best.pt", *map(str, files))
    for name, path in artifacts.items():
        exported = cli("asr-transcribe", f"model={path}", *map(str, files))
        assert exported.returncode == 0, exported.stderr
        if name != "int8":
            assert exported.stdout == plain.stdout, f"{name}: the same greedy transcripts"


def test_onnx_artifact_runs_on_onnxruntime_alone(trained, tiny_corpus, artifacts):
    source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
    script = Path(__file__).parents[1] / "scripts" / "onnx_transcribe.py"
    no_torch = "import sys; sys.modules['torch'] = None; sys.modules['asr'] = None; sys.argv = sys.argv[1:]; "
    no_torch += f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", no_torch, "x", str(artifacts["onnx"]), str(source)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    plain = cli("asr-transcribe", f"model={trained}/checkpoints/best.pt", str(source))
    assert result.stdout == plain.stdout


def test_export_errors_are_one_line(trained, tmp_path):
    checkpoint = f"model={trained}/checkpoints/best.pt"
    bad = cli("asr-export", checkpoint, "format=torchscript", "quantize=int8", f"output={tmp_path}/m.ts")
    assert bad.returncode == 2 and "quantize=int8 is for format=onnx" in bad.stderr
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    junk = cli("asr-transcribe", f"model={tmp_path / 'junk.onnx'}", "x.wav")
    assert (
        junk.returncode == 2
        and "not a readable onnx artifact" in junk.stderr
        and "Traceback" not in junk.stderr
    )


def test_a_blank_penalty_travels_with_the_checkpoint_and_its_exports(trained, tiny_corpus, tmp_path):
    """A checkpoint's blank penalty (what training tuned on dev) decodes the same way in asr-eval,
    asr-transcribe, an ONNX export and the torch-free ONNX example."""
    from asr.checkpoint import load_checkpoint, save_checkpoint

    penalised = tmp_path / "penalised.pt"
    checkpoint = load_checkpoint(trained / "checkpoints" / "best.pt")
    save_checkpoint(penalised, {**checkpoint, "blank_penalty": -50.0})
    onnx = tmp_path / "penalised.onnx"
    assert cli("asr-export", f"model={penalised}", "format=onnx", f"output={onnx}").returncode == 0
    files = [str(p) for p in sorted(tiny_corpus.glob("test/*/*/*.flac"))[:2]]
    plain = cli("asr-transcribe", f"model={trained}/checkpoints/best.pt", "blank_penalty=0", *files)
    from_checkpoint = cli("asr-transcribe", f"model={penalised}", *files)
    from_onnx = cli("asr-transcribe", f"model={onnx}", *files)
    assert from_checkpoint.returncode == 0, from_checkpoint.stderr
    # The untrained tiny model emits letters almost everywhere; a penalty of -50 leaves only blanks.
    assert plain.stdout.split("\t")[1].strip()
    assert from_checkpoint.stdout == "".join(f"{f}\t\n" for f in files)
    assert from_onnx.stdout == from_checkpoint.stdout
    script = Path(__file__).parents[1] / "scripts" / "onnx_transcribe.py"
    alone = subprocess.run([sys.executable, str(script), str(onnx), *files], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == from_checkpoint.stdout
    manifest = tiny_corpus / "manifests" / "test.jsonl"
    evaluated = cli("asr-eval", f"model={penalised}", f"manifest={manifest}", f"output={tmp_path}/eval.json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["blank_penalty"] == -50.0
