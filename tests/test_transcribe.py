"""Long files in overlapping chunks: every frame once, the same as one pass where that is exact."""

import numpy as np
import pytest
import soundfile
import torch
from torch import nn

from asr.audio import frame_levels_db, load_audio
from asr.ctc.alignment import boundary_errors, pause_cuts, speech_spans
from asr.errors import UserError
from asr.models import ConvBiLSTMDims
from asr.recognizer import Recognizer, trim_quiet_ends
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
    [chunked] = recognizer.transcribe([path], timestamps=True, chunk_seconds=6, segment=False)
    [whole] = recognizer.transcribe([path], timestamps=True, chunk_seconds=60)
    assert chunked.text == whole.text and len(chunked.text.split()) > 10
    starts = [word.start for word in chunked.words]
    assert starts == sorted(starts) and starts[-1] < 20.0 and chunked.words == whole.words


def test_long_files_are_cut_at_pauses_and_each_piece_read_alone(tmp_path, tiny_corpus):
    """The stand-in sees 20 ms around a frame, so a piece cut in a pause reads as it does within the
    whole file; each cut becomes a word break (the stand-in emits no spaces of its own)."""
    path = long_file(tmp_path, tiny_corpus, 20.0)
    recognizer = Recognizer(LocalModel(), CharTokenizer())
    [whole] = recognizer.transcribe([path], chunk_seconds=60)
    # cut at pauses of 0.3 s or more, as this test was written for (at the default 0.25 s the file's
    # own 0.25 s pauses of digital silence are cut too)
    [pieces] = recognizer.transcribe([path], timestamps=True, chunk_seconds=6, segment_min_pause=0.3)
    assert pieces.text.replace(" ", "") == whole.text.replace(" ", "")
    assert len(pieces.text.split()) > len(whole.text.split())  # a cut where the stand-in had no space
    starts = [word.start for word in pieces.words]
    assert [w.word for w in pieces.words] == pieces.text.split()
    assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] < 20.0
    # pieces are trimmed to their speech: their words keep the file's clock (the whole file read
    # as one utterance says where they are)
    [reference] = recognizer.transcribe([path], timestamps=True, chunk_seconds=60, segment=False)
    errors = boundary_errors(pieces.words, [(w.word, w.start) for w in reference.words])
    assert len(errors) >= len(pieces.words) // 2 and max(errors) <= recognizer.frame_seconds + 1e-6


def test_pauses_are_cut_in_their_middle_long_stretches_at_their_longest_and_pieces_trimmed_to_speech():
    def frames(labels: str) -> torch.Tensor:  # "-" blank, " " word break, letters speech
        ids = [0 if c == "-" else 1 if c == " " else 2 for c in labels]
        return torch.nn.functional.one_hot(torch.tensor(ids), 3).float().log()

    speech = "ab--c  -de----f"
    # silent runs (blank or space): [2, 4), [5, 8), [10, 14); middles 3, 6, 12
    assert pause_cuts(frames(speech), [0, 1], min_pause=3, max_length=100) == [6, 12]
    assert pause_cuts(frames(speech), [0, 1], min_pause=5, max_length=100) == []
    assert pause_cuts(frames(speech), [0, 1], min_pause=5, max_length=13) == [12]  # at the longest run
    assert pause_cuts(frames(speech), [0, 1], min_pause=5, max_length=10) == [6, 12]  # then again
    assert pause_cuts(frames("abcdef"), [0, 1], min_pause=1, max_length=4) == [3]  # no pause: the middle
    # the pieces [0, 6), [6, 12), [12, 15) trimmed to their speech (frames 0-4, 8-9, 14), with margins
    assert speech_spans(frames(speech), [0, 1], min_pause=3, max_length=100, margin=0) == [
        (0, 5),
        (8, 10),
        (14, 15),
    ]
    assert speech_spans(frames(speech), [0, 1], min_pause=3, max_length=100, margin=1) == [
        (0, 6),
        (7, 11),
        (13, 15),
    ]
    assert speech_spans(frames(speech), [0, 1], min_pause=3, max_length=100, margin=9) == [
        (0, 6),
        (6, 12),
        (12, 15),
    ]
    assert speech_spans(frames("------ab"), [0, 1], min_pause=3, max_length=100, margin=1) == [
        (5, 8)
    ]  # [0, 3): none


def test_a_pause_must_also_be_quiet():
    """A subword model emits blanks for a while inside words too: a silent run counts as a pause
    only where the audio is quiet, and only its quiet frames count towards ``min_pause``."""
    speech = torch.nn.functional.one_hot(torch.tensor([2, 2, 0, 0, 0, 2, 0, 0, 0, 0, 2]), 3).float().log()
    assert pause_cuts(speech, [0, 1], min_pause=3, max_length=100) == [3, 8]
    loud_first = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0], dtype=torch.bool)
    assert pause_cuts(speech, [0, 1], min_pause=3, max_length=100, quiet=loud_first) == [8]
    partly_quiet = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=torch.bool)
    assert pause_cuts(speech, [0, 1], min_pause=3, max_length=100, quiet=partly_quiet) == []
    assert speech_spans(speech, [0, 1], 3, 100, margin=0, quiet=loud_first) == [(0, 6), (10, 11)]


def test_frame_levels_are_each_frames_mean_power_in_db(tmp_path):
    rate = 8000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)  # mean power 1/8: -9.03 dB
    audio = np.concatenate([tone, np.zeros(rate // 2), tone[:100]]).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", audio, rate, subtype="FLOAT")
    levels = frame_levels_db(str(tmp_path / "a.wav"), rate, 320)
    assert len(levels) == 38  # 12,100 samples: 37 frames of 40 ms, then a short one of 260
    np.testing.assert_allclose(levels[:25], 10 * np.log10(1 / 8), atol=0.01)
    np.testing.assert_allclose(levels[25:37], -100.0)
    np.testing.assert_allclose(levels[-1], 10 * np.log10(np.sum(tone[:100] ** 2) / 260), atol=0.01)


def test_pieces_lose_their_quiet_ends_and_say_how_much_of_the_start_went():
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)  # 1 s at -9 dBFS
    quiet = np.random.default_rng(0).normal(0, 1e-4, 8000).astype(np.float32)  # 0.5 s, 70 dB below
    audio = np.concatenate([quiet, tone, quiet[:4000]])
    trimmed, skipped = trim_quiet_ends(audio, rate, top_db=30)
    # librosa's frames are 25 ms, centred, 10 ms apart: the cut is within a frame of the tone
    assert abs(skipped - 0.5) <= 0.025 and abs(len(trimmed) / rate - 1.0) <= 0.05
    start = round(skipped * rate)
    np.testing.assert_array_equal(trimmed, audio[start : start + len(trimmed)])
    assert trim_quiet_ends(audio, rate, top_db=0)[1] == 0.0
    blip = np.concatenate([quiet, tone[:800], quiet])  # 50 ms of sound: too short to be cut down to
    assert trim_quiet_ends(blip, rate, top_db=30)[0] is blip


def test_bad_segmenting_settings_are_user_errors(tmp_path, tiny_corpus):
    path = long_file(tmp_path, tiny_corpus, 5.0)
    recognizer = Recognizer(LocalModel(), CharTokenizer())
    for settings in ({"segment_min_pause": 0.0}, {"segment_margin": -0.1}, {"segment_trim_db": -3.0}):
        with pytest.raises(UserError, match="segment_min_pause=.*must be over 0 s"):
            recognizer.transcribe([path], **settings)
