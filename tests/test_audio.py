import numpy as np
import pytest
import soundfile

from asr.audio import AudioError, load_audio, save_audio


def tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
                                          ("FLAC", "PCM_24"), ("OGG", "VORBIS")])  # fmt: skip
def test_formats_and_pcm_types_load_as_float32(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, tone(16000), 16000, format=fmt, subtype=subtype)
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32
    assert abs(len(audio) - 8000) <= 64
    assert 0.4 < np.abs(audio).max() < 0.6


def test_other_rates_are_resampled_and_channels_mixed(tmp_path):
    stereo = np.stack([tone(44100), -tone(44100) * 0 + tone(44100)], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 44100)
    audio = load_audio(tmp_path / "s.wav", 16000)
    assert audio.ndim == 1 and len(audio) == 8000
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 5


def test_offset_and_duration(tmp_path):
    samples = np.linspace(-1, 1, 16000, dtype=np.float32)
    save_audio(tmp_path / "r.wav", samples, 16000)
    part = load_audio(tmp_path / "r.wav", 16000, offset=0.25, duration=0.5)
    assert len(part) == 8000
    assert part[0] == pytest.approx(samples[4000], abs=1e-4)


@pytest.mark.parametrize("name, content, message", [
    ("missing.wav", None, "no such audio file"),
    ("empty.wav", b"", "cannot read audio"),
    ("corrupt.flac", b"fLaC this is not really flac data", "cannot read audio"),
])  # fmt: skip
def test_bad_files_get_one_line_error_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError) as error:
        load_audio(path, 16000)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_zero_length_audio_is_an_error(tmp_path):
    soundfile.write(tmp_path / "z.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "z.wav", 16000)
