"""Speech synthesis with espeak-ng: the pip-installed library (espeakng-loader) through ctypes,
or the system ``espeak-ng`` program where that package is missing."""

from __future__ import annotations

import ctypes
import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile

from asr.errors import UserError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language voice + variant, speaking rate (words/min) and pitch (0-100)."""

    name: str
    variant: str
    rate: int
    pitch: int

    @property
    def espeak_name(self) -> str:
        return f"{self.name}+{self.variant}"


class Synthesizer:
    """Turns text into 16-bit mono speech at ``self.sample_rate`` with espeak-ng."""

    def __init__(self, seed: int = 0) -> None:
        """``seed``: espeak-ng's noise generator (breathy voices), which it otherwise seeds from
        the clock, so the same text gives the same audio."""
        self._lib = None
        try:
            import espeakng_loader
        except ImportError:
            if shutil.which("espeak-ng") is None:
                raise UserError(
                    "no speech synthesiser: pip install espeakng-loader, or apt-get install espeak-ng"
                ) from None
            self.sample_rate = 22050
            return
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise UserError(f"espeak-ng failed to initialise with data at {data_path.decode()}")
        self._chunks: list[np.ndarray] = []
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the library may call it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:  # text_position counts characters from 1
                event = events[i]
                self._words.append((event.text_position - 1, event.length, event.sample))
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice) -> np.ndarray:
        """Speak ``text`` with ``voice``; returns int16 samples at ``self.sample_rate``."""
        return self.synthesize_words(text, voice)[0]

    def synthesize_words(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[str, float]] | None]:
        """Speak ``text``; returns the samples and, per word, ``(word, start in seconds)`` where
        espeak-ng began speaking it (None from the ``espeak-ng`` program, which does not say)."""
        if self._lib is None:
            return self._synthesize_cli(text, voice), None
        if self._lib.espeak_SetVoiceByName(voice.espeak_name.encode()) != 0:
            raise UserError(f"espeak-ng has no voice {voice.espeak_name!r}")
        self._lib.espeak_SetParameter(_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(_PITCH, voice.pitch, 0)
        encoded = text.encode() + b"\0"
        self._chunks, self._words = [], []
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng failed (status {status}) on {text!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        words = [
            (text[start : start + length], sample / self.sample_rate) for start, length, sample in self._words
        ]
        return samples, words

    @staticmethod
    def _synthesize_cli(text: str, voice: Voice) -> np.ndarray:
        command = ["espeak-ng", "-v", voice.espeak_name, "-s", str(voice.rate), "-p", str(voice.pitch)]
        wav = subprocess.run([*command, "--stdout", text], check=True, capture_output=True).stdout
        samples, _ = soundfile.read(io.BytesIO(wav), dtype="int16")
        return samples
