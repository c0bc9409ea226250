"""Long files in overlapping chunks: every frame once, the same as one pass where that is exact."""

import numpy as np
import soundfile
import torch
from torch import nn

from asr.audio import load_audio
from asr.models import ConvBiLSTMDims
from asr.recognizer import Recognizer
from asr.text import CharTokenizer

RATE = 16000


class LocalModel(nn.Module):
    """A stand-in whose frame t depends only on the audio within 20 ms of t * 40 ms, the frame
    rate of the small model: chunked and whole-file outputs must then agree exactly."""

    dims = ConvBiLSTMDims(hop_length=160, conv_strides=[[2, 2], [2, 2]])
    frame_shift_seconds = 0.04

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor):
        frames = lengths // 640 + 1
        padded = nn.functional.pad(audio, (320, 640))
        windows = padded.unfold(1, 640, 640)[:, : int(frames.max())]  # (batch, frames, 640)
        energy = windows.abs().sum(-1)
        tokens = torch.where(energy > 10, 1 + (energy * 7).long() % 27, 0)
        return nn.functional.one_hot(tokens, 29).float().clamp(min=1e-4).log(), frames


def long_file(tmp_path, corpus, seconds: float):
    """The built-in corpus's utterances one after another, with short pauses, ``seconds`` long."""
    pause = np.zeros(RATE // 4, np.float32)
    pieces = [
        piece for path in sorted(corpus.glob("*/*/*/*.flac")) for piece in (load_audio(path, RATE), pause)
    ]
    audio = np.concatenate(pieces * 10)[: int(seconds * RATE)]
    path = tmp_path / "long.wav"
    soundfile.write(path, audio, RATE)
    return path


def test_chunks_give_every_frame_once_and_exactly(tmp_path, tiny_corpus):
    path = long_file(tmp_path, tiny_corpus, 47.3)
    audio = load_audio(path, RATE)  # as written: 16-bit
    model = LocalModel()
    whole, frames = model(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    recognizer = Recognizer(model, CharTokenizer())
    for chunk, overlap in ((5.0, 1.0), (12.0, 4.0), (30.0, 4.0)):
        chunked = recognizer.long_log_probs(path, chunk, overlap)
        assert chunked.shape[0] == int(frames[0])
        torch.testing.assert_close(chunked, whole[0, : int(frames[0])])


def test_long_files_transcribe_with_word_times_in_order(tmp_path, tiny_corpus):
    path = long_file(tmp_path, tiny_corpus, 20.0)
    recognizer = Recognizer(LocalModel(), CharTokenizer())
    [chunked] = recognizer.transcribe([path], timestamps=True, chunk_seconds=6)
    [whole] = recognizer.transcribe([path], timestamps=True, chunk_seconds=60)
    assert chunked.text == whole.text and len(chunked.text.split()) > 10
    starts = [word.start for word in chunked.words]
    assert starts == sorted(starts) and starts[-1] < 20.0 and chunked.words == whole.words
