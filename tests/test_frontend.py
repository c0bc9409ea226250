import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.checkpoint import model_identity
from asr.errors import UserError
from asr.frontend import LogMelFrontend
from asr.frontend import functional as F
from asr.models import ConvBiLSTM, ConvBiLSTMDims, build_model

TINY_DIMS = ConvBiLSTMDims(
    n_mels=32, conv_channels=[4, 4], conv_kernels=[[5, 7], [5, 5]], conv_strides=[[2, 2], [2, 3]],
    rnn_hidden=8, rnn_layers=2,
)  # fmt: skip


def test_log_mel_matches_librosa():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(12345).astype(np.float32) * 0.1
    reference = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=80, center=True,
        pad_mode="constant", power=2.0,
    )  # fmt: skip
    ours = F.log_mel_spectrogram(
        torch.from_numpy(audio)[None],
        F.dft_basis(512, torch.hann_window(400)),
        F.mel_filterbank(16000, 512, 80),
        160,
    )[0]
    np.testing.assert_allclose(ours.numpy(), np.log(reference.T + 1e-6), atol=1e-3, rtol=1e-4)


def test_normalisation_uses_valid_frames_only_and_zeroes_padding():
    features = torch.randn(2, 50, 3) * 4 + 7
    lengths = torch.tensor([50, 20])
    normalized = F.normalize_per_utterance(features, lengths)
    alone = F.normalize_per_utterance(features[1:, :20], lengths[1:])
    torch.testing.assert_close(normalized[1, :20], alone[0])
    assert normalized[1, 20:].abs().max() == 0
    torch.testing.assert_close(normalized[0].mean(0), torch.zeros(3), atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=400, max_value=9000), min_size=1, max_size=4),
    st.sampled_from([80, 160, 256]),
)
def test_frame_counts_match_the_stft(sample_lengths, hop):
    frontend = LogMelFrontend(16000, 512, 400, hop, 16)
    for n in sample_lengths:
        features, lengths = frontend(torch.randn(1, n), torch.tensor([n]))
        assert features.shape[1] == lengths.item() == F.num_frames(n, hop)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=800, max_value=12000), min_size=1, max_size=4))
def test_model_output_lengths_are_exact(sample_lengths):
    model = ConvBiLSTM(TINY_DIMS).eval()
    for n in sample_lengths:
        log_probs, lengths = model(torch.randn(1, n), torch.tensor([n]))
        assert log_probs.shape[1] == lengths.item() == model.output_lengths(torch.tensor([n])).item()


def test_padding_does_not_change_an_utterances_output():
    torch.manual_seed(0)
    model = ConvBiLSTM(TINY_DIMS).eval()
    short, long = torch.randn(3000), torch.randn(7000)
    batch = torch.zeros(2, 7000)
    batch[0, :3000], batch[1] = short, long
    with torch.no_grad():
        batched, lengths = model(batch, torch.tensor([3000, 7000]))
        alone, alone_lengths = model(short[None], torch.tensor([3000]))
    assert lengths[0] == alone_lengths[0]
    torch.testing.assert_close(batched[0, : lengths[0]], alone[0], atol=1e-4, rtol=1e-4)


def test_dft_basis_conv_equals_torch_stft():
    audio = torch.randn(3, 9000) * 0.2
    basis = F.dft_basis(512, torch.hann_window(400))
    padded = torch.nn.functional.pad(audio, (256, 256))
    ours = torch.nn.functional.conv1d(padded.unsqueeze(1), basis, stride=160)
    spectrum = torch.stft(audio, 512, 160, 400, torch.hann_window(400), center=True, pad_mode="constant",
                          return_complex=True)  # fmt: skip
    torch.testing.assert_close(ours[:, :257], spectrum.real, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(ours[:, 257:], spectrum.imag, atol=2e-4, rtol=1e-4)


def test_vocal_tract_warp_moves_formants_and_keeps_the_band_edges():
    bins = 257
    power = torch.zeros(3, 2, bins)
    power[:, :, 60] = 1.0  # one "formant" at bin 60, below the knee for all three factors
    power[:, :, -1] = 5.0  # the Nyquist bin
    warped = F.warp_frequencies(power, torch.tensor([1.0, 1.1, 0.9]))
    torch.testing.assert_close(warped[0], power[0])  # factor 1: unchanged
    for row, factor in ((1, 1.1), (2, 0.9)):
        spectrum = warped[row, 0]
        centre = (spectrum[:-2] * torch.arange(bins - 2)).sum() / spectrum[:-2].sum()
        assert abs(float(centre) - 60 * factor) < 0.5  # the formant moved with the factor
        assert float(spectrum[-1]) == 5.0  # the top of the band stays in place


def test_speech_statistics_ignore_silence_around_the_speech():
    """With ``speech_range_db``, the statistics come from the frames near the loudest, so silence
    added around an utterance leaves its speech frames' features unchanged; over all frames
    (0, as before) it moves them."""
    rng = np.random.default_rng(0)
    speech = torch.from_numpy(rng.standard_normal((40, 8)).astype(np.float32))  # log-mel around 0
    silence = torch.full((30, 8), -13.8)  # log(eps): digital silence
    padded = torch.cat([silence[:10], speech, silence[10:]])[None]
    alone = F.normalize_per_utterance(speech[None], torch.tensor([40]), speech_range_db=30)
    around = F.normalize_per_utterance(padded, torch.tensor([70]), speech_range_db=30)
    torch.testing.assert_close(around[0, 10:50], alone[0], atol=1e-5, rtol=1e-5)
    # the statistics are those of the speech frames, computed independently
    expected = (speech - speech.mean(0)) / torch.sqrt(speech.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(alone[0], expected, atol=1e-5, rtol=1e-5)
    everything = F.normalize_per_utterance(padded, torch.tensor([70]))
    assert (everything[0, 10:50] - alone[0]).abs().mean() > 0.5


def test_speech_range_is_measured_from_the_loudest_frame_in_db():
    # frames of total mel power 1, 10^-2 and 10^-4 (0, -20 and -40 dB): 30 dB keeps the first two
    levels = torch.tensor([1.0, 1e-2, 1e-4]).repeat_interleave(4)
    features = torch.log(levels[:, None] * torch.tensor([0.25, 0.75]))[None]  # 2 channels
    kept = features[0, :8]
    expected = (features[0] - kept.mean(0)) / torch.sqrt(kept.var(0, unbiased=False) + 1e-5)
    ours = F.normalize_per_utterance(features, torch.tensor([12]), speech_range_db=30)
    torch.testing.assert_close(ours[0], expected)


def test_checkpoints_without_the_setting_normalise_over_all_frames():
    dims = {"n_mels": 32, "rnn_hidden": 8}
    assert model_identity({"model_name": "conv_bilstm", "model_dims": dims})[1]["speech_range_db"] == 0.0
    assert ConvBiLSTMDims().speech_range_db == 30.0  # new models use the speech frames' statistics


def test_a_negative_speech_range_is_a_user_error():
    with pytest.raises(UserError, match="speech_range_db=-1"):
        build_model("conv_bilstm", {"speech_range_db": -1})


def test_a_prior_pools_its_frames_with_the_utterances_own():
    """Statistics pooled with a prior of ``(mean, variance, frames)`` are those of the utterance's
    frames and that many frames of the prior's at the utterance's level, computed here directly
    on the joined frames; and they do not depend on the recording's gain."""
    rng = np.random.default_rng(1)
    speech = torch.from_numpy(rng.standard_normal((12, 4)).astype(np.float32)) * 2 + 3
    others = torch.from_numpy(rng.standard_normal((30, 4)).astype(np.float32)) - 1
    prior = (others.mean(0), others.var(0, unbiased=False), 30.0)
    joined = torch.cat([speech, others - others.mean() + speech.mean()])
    expected = (speech - joined.mean(0)) / torch.sqrt(joined.var(0, unbiased=False) + 1e-5)
    ours = F.normalize_per_utterance(speech[None], torch.tensor([12]), prior=prior)
    torch.testing.assert_close(ours[0], expected, atol=1e-5, rtol=1e-5)
    louder = F.normalize_per_utterance(speech[None] + 2.3, torch.tensor([12]), prior=prior)  # 10x the power
    torch.testing.assert_close(louder, ours, atol=1e-5, rtol=1e-5)
    # a prior of few frames next to the utterance's own barely moves it
    weak = F.normalize_per_utterance(speech[None], torch.tensor([12]), prior=(*prior[:2], 1e-3))
    own = F.normalize_per_utterance(speech[None], torch.tensor([12]))
    torch.testing.assert_close(weak, own, atol=1e-3, rtol=0)


def test_the_prior_is_the_training_utterances_average_and_is_used_in_evaluation():
    frontend = LogMelFrontend(8000, 256, 200, 80, 16, prior_seconds=0.5)  # 50 frames
    audio = torch.randn(3, 4000) * torch.tensor([[0.01], [0.1], [1.0]])
    lengths = torch.tensor([4000, 3000, 2000])
    features = F.log_mel_spectrogram(audio, frontend.basis, frontend.filterbank, 80)
    frames = frontend.output_lengths(lengths)
    own = [features[i, : frames[i]] for i in range(3)]
    trained, _ = frontend.train()(audio, lengths)  # the first batch sets the averages
    # training normalises each utterance by its own statistics alone
    torch.testing.assert_close(trained, F.normalize_per_utterance(features, frames))
    torch.testing.assert_close(frontend.prior_mean, torch.stack([f.mean(0) for f in own]).mean(0))
    torch.testing.assert_close(
        frontend.prior_variance, torch.stack([f.var(0, unbiased=False) for f in own]).mean(0)
    )
    kept = frontend.prior_mean.clone()
    evaluated, _ = frontend.eval()(audio, lengths)
    torch.testing.assert_close(frontend.prior_mean, kept)  # evaluation reads, never updates
    prior = (frontend.prior_mean, frontend.prior_variance, 50)
    torch.testing.assert_close(evaluated, F.normalize_per_utterance(features, frames, prior=prior))
    assert {"prior_mean", "prior_variance"} <= set(frontend.state_dict())
    assert "prior_mean" not in LogMelFrontend(8000, 256, 200, 80, 16).state_dict()


def test_the_prior_trains_under_bf16_autocast_with_float32_statistics():
    """Mixed-precision training (bf16 autocast, the default on CPUs with native bf16) once stopped
    at the first step: the log-mel features came out in bf16 and the prior's float32 averages
    refused them. Statistics and normalised features are now float32, close to the fp32 path."""
    audio = torch.randn(2, 4000) * torch.tensor([[0.05], [1.0]])
    lengths = torch.tensor([4000, 2500])
    exact = LogMelFrontend(8000, 256, 200, 80, 16, prior_seconds=0.5).train()
    mixed = LogMelFrontend(8000, 256, 200, 80, 16, prior_seconds=0.5).train()
    expected, _ = exact(audio, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = mixed(audio, lengths)
    assert features.dtype == mixed.prior_mean.dtype == torch.float32
    torch.testing.assert_close(features, expected, atol=0.1, rtol=0.05)
    torch.testing.assert_close(mixed.prior_mean, exact.prior_mean, atol=0.05, rtol=0.02)


def test_a_negative_prior_is_a_user_error():
    with pytest.raises(UserError, match="prior"):
        build_model("conv_bilstm", {"stats_prior_seconds": -1})
