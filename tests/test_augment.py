import numpy as np
import pytest
import soundfile
import torch

from asr.augment import SpecAugment, WaveformAugment, add_noise, pad_with_silence, speed_perturb
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import Utterance, read_manifest, write_manifest
from asr.text import CharTokenizer
from asr.train.loop import run
from tests.test_train import losses, train_config

RATE = 16000


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)


def peak_hz(audio: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(audio))) * RATE / len(audio))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_duration_and_pitch_by_the_factor(factor):
    audio = speed_perturb(tone(500), factor, RATE)
    assert abs(len(audio) - RATE / factor) <= 2
    assert peak_hz(audio) == pytest.approx(500 * factor, abs=2)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 23.5])
def test_noise_is_added_at_the_requested_snr(snr_db):
    speech, noise = tone(300), np.random.default_rng(0).standard_normal(RATE).astype(np.float32)
    mixed = add_noise(speech, noise, snr_db)
    measured = 10 * np.log10(np.mean(speech**2) / np.mean((mixed - speech) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.01) and len(mixed) == len(speech)


def test_spec_augment_masks_bands_and_spans_inside_each_utterance():
    torch.manual_seed(0)
    features, lengths = torch.randn(64, 200, 40) + 5.0, torch.randint(50, 201, (64,))
    augment = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=0.1)
    assert augment.eval()(features, lengths) is features
    masked = augment.train()(features, lengths) == 0
    assert masked.shape == features.shape and masked.any()
    frames = torch.arange(200)
    for i in range(64):
        bands = masked[i].all(dim=0)  # mel bins masked over every frame
        spans = masked[i].all(dim=1)  # frames masked over every bin
        assert bands.sum() <= 16 and spans.sum() <= 2 * int(lengths[i] * 0.1)
        assert not spans[frames >= lengths[i]].any(), "time masks stay within the utterance"
        assert (masked[i] == (bands[None, :] | spans[:, None])).all(), "only whole bands and spans"
    assert any(masked[i].all(dim=0).any() for i in range(64)) and any(
        masked[i].all(dim=1).any() for i in range(64)
    )


@pytest.fixture
def noise_manifest(tmp_path):
    path = tmp_path / "noise.wav"
    soundfile.write(path, np.random.default_rng(1).standard_normal(RATE // 2).astype(np.float32) * 0.1, RATE)
    manifest = tmp_path / "noise.jsonl"
    write_manifest(manifest, [Utterance(path, 0.5, "")])
    return manifest


def test_dataset_augmentation_is_reproducible_per_epoch_and_lengths_stay_consistent(
    tiny_corpus, noise_manifest
):
    utterances = read_manifest(tiny_corpus / "manifests" / "train.jsonl")[:4]
    augment = WaveformAugment(RATE, [0.9, 1.1], read_manifest(noise_manifest), 1.0, (5.0, 5.0))
    plain = SpeechDataset(utterances, CharTokenizer(), RATE)
    dataset = SpeechDataset(utterances, CharTokenizer(), RATE, augment, seed=7)
    first = [dataset[i][0] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, [dataset[i][0] for i in range(4)], strict=True))
    for original, augmented in zip((plain[i][0] for i in range(4)), first, strict=True):
        assert round(len(original) / len(augmented), 2) in (0.9, 1.1)
    dataset.set_epoch(1)
    assert any(not torch.equal(a, dataset[i][0]) for i, a in enumerate(first))
    batch = collate([dataset[i] for i in range(4)])
    assert batch.sample_lengths.tolist() == [len(dataset[i][0]) for i in range(4)]


def test_training_with_every_augmentation(tiny_corpus, noise_manifest, tmp_path):
    everything = [
        "augment=standard",
        f"augment.noise_manifest={noise_manifest}",
        "augment.noise_probability=1",
    ]
    run(train_config(tiny_corpus, *everything, "trainer.max_steps=2"), tmp_path)
    assert len(losses(tmp_path)) == 2


def test_silence_padding_keeps_the_speech_and_adds_a_quiet_floor():
    rng = np.random.default_rng(0)
    speech = rng.normal(0, 0.1, 8000).astype(np.float32)
    for seed in range(20):
        padded = pad_with_silence(speech, 0.5, 16000, np.random.default_rng(seed))
        extra = len(padded) - len(speech)
        assert 0 <= extra <= 16000
        starts = [i for i in range(extra + 1) if np.array_equal(padded[i : i + len(speech)], speech)]
        assert len(starts) == 1, "the speech, intact, once"
        floor = np.concatenate([padded[: starts[0]], padded[starts[0] + len(speech) :]])
        if len(floor) > 1000:
            below = 20 * np.log10(np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(floor**2)))
            assert 25 < below < 65
