"""Models as registered parts: the registry, checkpoints from before it, and a second
architecture (tdnn) that trains, exports and transcribes through the same tools."""

from pathlib import Path

import pytest
import torch

from asr import Recognizer
from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.errors import UserError
from asr.models import MODELS, build_model
from tests.conftest import cli

FIXTURES = Path(__file__).with_name("fixtures")
TINY_TDNN = ["model=tdnn", "model.n_mels=32", "model.channels=[32,32,32]", "model.kernels=[5,3,3]",
             "model.dilations=[1,2,1]", "model.strides=[2,1,2]"]  # fmt: skip


def test_checkpoints_from_before_models_had_names_load_as_they_were():
    model, tokenizer = load_model(FIXTURES / "checkpoint_before_registry.pt", torch.device("cpu"))
    expected = torch.load(FIXTURES / "checkpoint_before_registry.expected.pt", weights_only=True)
    with torch.no_grad():
        log_probs, frames = model(expected["audio"], expected["lengths"])
    assert model.name == "conv_bilstm" and tokenizer.blank == 0
    assert torch.equal(frames, expected["frames"])
    torch.testing.assert_close(log_probs, expected["log_probs"])


def test_every_model_knows_its_frame_arithmetic():
    for name, cls in MODELS.items():
        model = build_model(name, {"n_mels": 32}).eval()
        for samples in (1600, 7777, 16000):
            with torch.no_grad():
                log_probs, frames = model(torch.randn(1, samples), torch.tensor([samples]))
            assert log_probs.shape[1] == frames[0] == model.output_lengths(torch.tensor([samples]))[0], name
        shift = model.frame_shift_seconds
        assert shift == pytest.approx(model.dims.hop_length * model.time_subsampling / model.dims.sample_rate)
        assert cls.__module__ == f"asr.models.{name}"


def test_every_model_gives_float32_log_probs_under_bf16_autocast():
    """CPU autocast keeps log_softmax in bf16 (CUDA's moves it to float32): log-probs quantised to
    bf16's 8 bits once trained the CPU models (their loss went below 0). Each output frame must be
    a distribution to float32 precision, as CTC expects."""
    torch.manual_seed(0)
    for name in MODELS:
        model = build_model(name, {"n_mels": 32}).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            log_probs, _ = model(torch.randn(2, 8000), torch.tensor([8000, 6000]))
        assert log_probs.dtype == torch.float32, name
        total = log_probs.double().exp().sum(-1)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0, msg=name)


def test_unknown_models_and_settings_are_named():
    with pytest.raises(UserError, match="did you mean tdnn"):
        build_model("tdn", {})
    with pytest.raises(
        UserError, match="model.rnn_hiden: conv_bilstm has no such setting; did you mean rnn_hidden"
    ):
        build_model("conv_bilstm", {"rnn_hiden": 3})


@pytest.mark.slow
def test_a_second_architecture_trains_exports_and_transcribes(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    trained = cli("asr-train", "data=manifest", f"data.train_manifest={tiny_corpus}/manifests/train.jsonl",
                  f"data.dev_manifest={tiny_corpus}/manifests/dev.jsonl", "data.batch_size=4",
                  "trainer.max_steps=3", "trainer.progress=false", *TINY_TDNN,
                  "+model.stats_prior_seconds=1", f"hydra.run.dir={run}")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    checkpoint = run / "checkpoints" / "best.pt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["model_name"] == "tdnn"
    assert saved["model"]["frontend.prior_mean"].abs().sum() > 0  # the training utterances' average
    onnx = tmp_path / "tdnn.onnx"
    exported = cli("asr-export", f"model={checkpoint}", "format=onnx", f"output={onnx}")
    assert exported.returncode == 0, exported.stderr
    audio = sorted(tiny_corpus.glob("test/*/*/*.flac"))[:2]
    eager, artifact = Recognizer.load(checkpoint, "cpu"), Recognizer.load(onnx, "cpu")
    assert artifact.model.name == "tdnn" and artifact.frame_seconds == eager.frame_seconds == 0.04
    assert [r.text for r in artifact.transcribe(audio)] == [r.text for r in eager.transcribe(audio)]
    waveforms = [load_audio(path, 16000) for path in audio]  # the exported frontend keeps the prior
    for ours, theirs in zip(artifact.log_probs(waveforms), eager.log_probs(waveforms), strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    evaluated = cli("asr-eval", f"model={onnx}", f"manifest={tiny_corpus}/manifests/test.jsonl",
                    f"output={tmp_path}/test.json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
