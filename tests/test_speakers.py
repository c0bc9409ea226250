"""Per-speaker feature statistics: what they are, how the frontend uses them, and that
recognition hands each utterance its own speaker's."""

import dataclasses

import numpy as np
import pytest
import torch

from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError
from asr.frontend import LogMelFrontend
from asr.frontend import functional as F
from asr.models import build_model
from asr.recognizer import Recognizer
from asr.speakers import for_recognizer, speaker_statistics
from asr.text import CharTokenizer

from .conftest import TINY_MODEL, cli


def tiny_dataset(tiny_corpus, split="train") -> SpeechDataset:
    return SpeechDataset(read_manifest(tiny_corpus / "manifests" / f"{split}.jsonl"), CharTokenizer(), 16000)


def test_each_utterance_gets_the_average_of_its_speakers_utterances(tiny_corpus):
    dataset = tiny_dataset(tiny_corpus)
    speakers = dataset.speakers
    assert len(set(speakers)) == 3 and "" not in speakers  # the corpus manifests name them
    frontend = LogMelFrontend(16000, 512, 400, 160, 32)  # statistics from all frames
    means, variances = speaker_statistics(frontend, dataset, torch.device("cpu"), batch_size=5)
    own = []  # each utterance's log-mel mean and variance, computed here one at a time in numpy
    for i in range(len(dataset)):
        audio = torch.from_numpy(dataset.audio(i))[None]
        features = F.log_mel_spectrogram(audio, frontend.basis, frontend.filterbank, 160)[0].numpy()
        own.append((features.mean(0), features.var(0)))
    for i, speaker in enumerate(speakers):
        members = [j for j, s in enumerate(speakers) if s == speaker]
        for k, ours in enumerate((means[i], variances[i])):
            np.testing.assert_allclose(ours, np.mean([own[j][k] for j in members], 0), rtol=1e-4, atol=1e-4)
    dataset.utterances[0] = dataclasses.replace(dataset.utterances[0], speaker="")  # its own, then
    means, _ = speaker_statistics(frontend, dataset, torch.device("cpu"))
    np.testing.assert_allclose(means[0], own[0][0], rtol=1e-4, atol=1e-4)


def test_speaker_statistics_replace_the_utterances_own_at_its_level():
    frontend = LogMelFrontend(8000, 256, 200, 80, 16, prior_seconds=1).eval()
    audio, lengths = torch.randn(2, 4000) * torch.tensor([[0.1], [1.0]]), torch.tensor([4000, 3000])
    features, frames = frontend.log_mel(audio, lengths)
    mean, variance, _ = F.speech_statistics(features, frames)
    # an utterance's own statistics given as its speaker's: per-utterance normalisation, no prior
    own, _ = frontend(audio, lengths, speaker=(mean[:, 0], variance[:, 0]))
    torch.testing.assert_close(own, F.normalize_per_utterance(features, frames), atol=1e-5, rtol=1e-5)
    # a speaker's statistics from elsewhere: its channel shape, at the utterance's level, so a
    # gain (here 10x the amplitude) changes nothing
    speaker = (torch.linspace(-3, 3, 16).expand(2, 16), torch.linspace(1, 2, 16).expand(2, 16))
    quiet, _ = frontend(audio, lengths, speaker=speaker)
    loud, _ = frontend(audio * 10, lengths, speaker=speaker)
    torch.testing.assert_close(quiet, loud, atol=1e-3, rtol=1e-3)  # but for log(power + eps)
    shifted = speaker[0] - speaker[0].mean(-1, keepdim=True) + mean[:, 0].mean(-1, keepdim=True)
    expected = (features[0, :50] - shifted[0]) / torch.sqrt(speaker[1][0] + 1e-5)
    torch.testing.assert_close(quiet[0, :50], expected, atol=1e-5, rtol=1e-5)


def test_recognition_passes_each_utterance_its_speakers_statistics(tiny_corpus):
    model = build_model("conv_bilstm", {"n_mels": 32, "rnn_hidden": 8, "rnn_layers": 1}).eval()
    recognizer = Recognizer(model, CharTokenizer())
    dataset = tiny_dataset(tiny_corpus)
    stats = (torch.randn(len(dataset), 32), torch.rand(len(dataset), 32) + 0.5)
    batches = recognizer.batches(dataset.durations, lambda i: dataset[i][0], 5, speaker=stats)
    for indices, log_probs, frames in batches:  # sorted by length, so not in dataset order
        for i, ours, n in zip(indices, log_probs, frames, strict=True):
            audio = torch.from_numpy(dataset.audio(i))[None]
            alone, _ = model(audio, torch.tensor([audio.shape[1]]), speaker=(stats[0][[i]], stats[1][[i]]))
            torch.testing.assert_close(ours[:n], alone[0], atol=1e-4, rtol=1e-4)


def test_streaming_models_have_no_speaker_statistics():
    with pytest.raises(UserError, match="speaker_statistics"):
        build_model("streaming_conv_lstm", {"speaker_statistics": True})


@pytest.mark.slow
def test_a_model_with_speaker_statistics_uses_them_in_recognition(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    trained = cli("asr-train", "data=manifest", f"data.train_manifest={tiny_corpus}/manifests/train.jsonl",
                  f"data.dev_manifest={tiny_corpus}/manifests/dev.jsonl", "data.batch_size=4",
                  "trainer.max_steps=3", "trainer.progress=false", *TINY_MODEL,
                  "model.speaker_statistics=true", f"hydra.run.dir={run}")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    recognizer = Recognizer.load(run / "checkpoints" / "best.pt", "cpu")
    assert recognizer.model.dims.speaker_statistics  # the checkpoint says how to recognise with it
    dataset = tiny_dataset(tiny_corpus, "test")
    given = for_recognizer(recognizer, dataset)  # what asr-eval, asr-tune-lm and asr-align pass
    expected = speaker_statistics(recognizer.model.frontend, dataset, torch.device("cpu"))
    assert given is not None and all(torch.equal(a, b) for a, b in zip(given, expected, strict=True))
    assert for_recognizer(recognizer, dataset, use=False) is None  # asr-eval speakers=false
    plain = Recognizer(build_model("conv_bilstm", {"n_mels": 32}), CharTokenizer())
    assert for_recognizer(plain, dataset) is None
    assert for_recognizer(plain, dataset, use=True) is not None  # asr-eval speakers=true
    checkpoint, onnx = run / "checkpoints" / "best.pt", tmp_path / "model.onnx"
    assert cli("asr-export", f"model={checkpoint}", "format=onnx", f"output={onnx}").returncode == 0
    for model, speakers, error in [(checkpoint, "false", ""), (onnx, "true", "exported")]:
        evaluated = cli("asr-eval", f"model={model}", f"output={tmp_path}/test.json", f"speakers={speakers}",
                        f"manifest={tiny_corpus}/manifests/test.jsonl")  # fmt: skip
        assert evaluated.returncode == (2 if error else 0), evaluated.stderr
        assert error in evaluated.stderr and "Traceback" not in evaluated.stderr
