"""Make the browser test's fixtures: a small streaming model (its weights in float16, about 1 MB)
and a recording of a test speaker (one the model never heard) that it transcribes right.

    asr-train model=streaming model.n_mels=40 model.conv_channels=[16,16] model.rnn_hidden=192 \\
        model.rnn_layers=2 trainer.max_time_minutes=10 hydra.run.dir=runs/stream_fixture
    python scripts/make_stream_fixture.py runs/stream_fixture/checkpoints/best.pt

Writes ``tests/fixtures/stream_model.pt``, ``stream_speech.wav`` (16-bit PCM, 16 kHz) and
``stream_speech.txt`` (what it says).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr import Recognizer
from asr.audio import load_audio
from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.data.manifest import read_manifest

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main(checkpoint: str, manifest: str = "data/synthetic/manifests/test.jsonl") -> None:
    payload = load_checkpoint(checkpoint)
    small = {key: payload[key] for key in ("model_name", "model_dims", "tokenizer")}
    small["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    save_checkpoint(FIXTURES / "stream_model.pt", small)
    recognizer = Recognizer.load(FIXTURES / "stream_model.pt", device="cpu")
    for utt in sorted(read_manifest(manifest), key=lambda u: u.duration):
        if utt.duration < 2.5:
            continue
        audio = load_audio(utt.audio_filepath, 16000)
        pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
        stream = recognizer.stream()
        stream.accept(pcm.astype(np.float32) / 32768)
        if stream.finish() == utt.text:
            soundfile.write(FIXTURES / "stream_speech.wav", pcm, 16000, subtype="PCM_16")
            (FIXTURES / "stream_speech.txt").write_text(utt.text + "\n")
            size = (FIXTURES / "stream_model.pt").stat().st_size / 1e6
            print(f"model {size:.1f} MB; {utt.audio_filepath} ({utt.duration:.1f} s): {utt.text}")
            return
    sys.exit("the model transcribes no test utterance of 2.5 s or more exactly: train it longer")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:])
