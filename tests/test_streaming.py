"""The streaming model and ``Stream``: over any chunking, the same log-probs as one forward pass
over the whole utterance, and partial transcripts that only grow."""

import json
import subprocess
import time

import numpy as np
import onnxruntime
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr import Recognizer
from asr.checkpoint import model_payload, save_checkpoint
from asr.ctc.decoding import GreedyDecoder
from asr.errors import UserError
from asr.models import build_model
from asr.streaming import Stream, StreamSpec, torch_step
from asr.text import CharTokenizer
from scripts.onnx_stream import OnnxStream
from tests.conftest import BIN, cli

TOKENIZER = CharTokenizer()
DIMS = {
    "n_mels": 16, "conv_channels": [4, 4], "conv_kernels": [[5, 5], [5, 3]], "rnn_hidden": 32,
    "rnn_layers": 2, "lookahead": 2, "dropout": 0.0, "vocab_size": len(TOKENIZER),
}  # fmt: skip


def streaming_model(**changes) -> torch.nn.Module:
    """Random weights, running statistics set by one training-mode pass, then eval mode. The output
    bias favours letters over blank so that greedy decoding emits plenty of tokens."""
    torch.manual_seed(0)
    model = build_model("streaming_conv_lstm", {**DIMS, **changes})
    model.train()
    audio = torch.randn(3, 8000) * 0.1
    model(audio, torch.tensor([8000, 6000, 4000]))
    with torch.no_grad():
        model.output.bias[TOKENIZER.blank] -= 2.0
    return model.eval()


MODEL = streaming_model()


def spec(model) -> StreamSpec:
    d = model.dims
    return StreamSpec(d.n_fft, d.hop_length, model.subsampling(d), d.lookahead, d.sample_rate)


def whole(model, audio: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        log_probs, lengths = model(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    assert lengths.item() == log_probs.shape[1] == model.output_lengths(torch.tensor([len(audio)])).item()
    return log_probs[0]


def streamed(model, audio: np.ndarray, sizes: list[int]) -> tuple[Stream, list[str]]:
    stream = Stream(*torch_step(model), spec(model), TOKENIZER)
    partials, start, i = [], 0, 0
    while start < len(audio):
        size = sizes[i % len(sizes)]
        partials.append(stream.accept(audio[start : start + size]))
        start, i = start + size, i + 1
    partials.append(stream.finish())
    return stream, partials


@settings(max_examples=30, deadline=None)
@given(
    seconds=st.floats(0.0, 2.5),
    sizes=st.lists(st.integers(160, 32000), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_gives_the_whole_utterance_log_probs(seconds, sizes, seed):
    audio = np.random.default_rng(seed).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
    expected = whole(MODEL, audio)
    stream, partials = streamed(MODEL, audio, sizes)
    got = torch.from_numpy(stream.log_probs())
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    assert all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:], strict=False))
    (greedy,) = GreedyDecoder(TOKENIZER)(expected[None], torch.tensor([len(expected)]))
    assert partials[-1] == greedy


@pytest.mark.parametrize("lookahead", [0, 1, 4])
def test_one_sample_at_a_time_and_other_lookaheads(lookahead):
    model = streaming_model(lookahead=lookahead, conv_strides=[[2, 3], [2, 1]])
    audio = np.random.default_rng(1).normal(0, 0.1, 3000).astype(np.float32)
    stream, _ = streamed(model, audio, [1, 7, 160, 1])
    torch.testing.assert_close(
        torch.from_numpy(stream.log_probs()), whole(model, audio), atol=2e-5, rtol=1e-4
    )


def test_padding_in_a_batch_changes_nothing():
    audio = torch.randn(2, 12000) * 0.1
    lengths = torch.tensor([12000, 5000])
    with torch.inference_mode():
        batched, frames = MODEL(audio, lengths)
        alone, _ = MODEL(audio[1:, :5000], lengths[1:])
    torch.testing.assert_close(batched[1, : frames[1]], alone[0], atol=1e-5, rtol=1e-5)


def test_word_times_come_from_the_emitting_frames():
    audio = np.random.default_rng(2).normal(0, 0.1, 24000).astype(np.float32)
    stream, _ = streamed(MODEL, audio, [2560])
    words = stream.words()
    assert [w.word for w in words] == stream.text.split()
    shift = spec(MODEL).frame_seconds
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.start < w.end for w in words)
    assert all(w.end <= stream.frames * shift + 1e-9 for w in words)


def test_recognizer_streams_a_checkpoint_and_its_onnx_export(tmp_path):
    """The same stream from the checkpoint, from its ONNX export (state as explicit inputs and
    outputs), and from the onnxruntime + numpy example script; whole-utterance log-probs of the
    export come from the same graph."""
    checkpoint, exported = tmp_path / "stream.pt", tmp_path / "stream.onnx"
    save_checkpoint(checkpoint, model_payload(MODEL, TOKENIZER))
    result = cli("asr-export", f"model={checkpoint}", "format=onnx", f"output={exported}")
    assert result.returncode == 0, result.stderr
    audio = np.random.default_rng(3).normal(0, 0.1, 20000).astype(np.float32)
    expected = whole(MODEL, audio)
    texts = []
    for path in (checkpoint, exported):
        recognizer = Recognizer.load(path, device="cpu")
        stream = recognizer.stream()
        for start in range(0, len(audio), 2560):
            stream.accept(audio[start : start + 2560])
        texts.append(stream.finish())
        torch.testing.assert_close(torch.from_numpy(stream.log_probs()), expected, atol=1e-4, rtol=1e-3)
        (log_probs,) = recognizer.log_probs([audio])
        torch.testing.assert_close(log_probs, expected, atol=1e-4, rtol=1e-3)
    example = OnnxStream(onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"]))
    pieces = [example.accept(audio[start : start + 999]) for start in range(0, len(audio), 999)]
    torch.testing.assert_close(torch.from_numpy(np.concatenate([*pieces, example.finish()])), expected,
                               atol=1e-4, rtol=1e-3)  # fmt: skip
    assert texts[0] == texts[1] == example.text


def test_a_whole_utterance_model_says_it_cannot_stream(trained):
    with pytest.raises(UserError, match="streaming needs a streaming model"):
        Recognizer.load(trained / "checkpoints" / "best.pt", device="cpu").stream()


def test_transcribe_live_from_a_file_and_from_standard_input(tmp_path):
    """stream=true: JSON partials that only grow, and a final transcript equal to the one of the
    whole-utterance pass; the same from raw PCM on standard input; realtime=true takes the audio's
    own duration at least."""
    checkpoint = tmp_path / "stream.pt"
    save_checkpoint(checkpoint, model_payload(MODEL, TOKENIZER))
    pcm = (np.random.default_rng(4).normal(0, 0.1, 12000) * 32767).astype("<i2")
    wav = tmp_path / "a.wav"
    soundfile.write(wav, pcm, 16000, subtype="PCM_16")
    whole_pass = cli("asr-transcribe", f"model={checkpoint}", str(wav))
    expected = whole_pass.stdout.split("\t", 1)[1].rstrip("\n")
    live = cli("asr-transcribe", f"model={checkpoint}", "stream=true", "format=json", str(wav))
    assert live.returncode == 0, live.stderr
    lines = [json.loads(line) for line in live.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["partial"] * (len(lines) - 1) + ["final"]
    texts = [line["text"] for line in lines]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    assert texts[-1] == expected
    started = time.monotonic()
    piped = subprocess.run(
        [BIN / "asr-transcribe", f"model={checkpoint}", "stream=true", "realtime=true", "-"],
        input=pcm.tobytes(), capture_output=True, timeout=300,
    )  # fmt: skip
    assert time.monotonic() - started >= 12000 / 16000
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == f"-\t{expected}\n"
