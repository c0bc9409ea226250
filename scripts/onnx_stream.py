"""Live transcription with a streaming ONNX artifact of ``asr-export`` (``model=streaming``),
using onnxruntime, numpy and soundfile only: the file is fed in chunks as a microphone would
deliver them, and the transcript printed as it grows.

    python scripts/onnx_stream.py runs/stream/model.onnx speech.wav [chunk_ms]

The graph is one step: padded samples making whole groups of STFT frames, plus the state of the
previous step, in; the log-probs of the output frames now complete, those of the frames the
look-ahead holds back (used at the end), and the next state, out. ``asr/streaming.py`` is the
same logic inside the package.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime
import soundfile


class OnnxStream:
    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        meta = json.loads(session.get_modelmeta().custom_metadata_map["asr"])
        dims = meta["model_dims"]
        self.session, self.tokens = session, meta["tokenizer"]["tokens"]
        self.n_fft, self.hop = dims["n_fft"], dims["hop_length"]
        self.group = int(np.prod([stride[1] for stride in dims["conv_strides"]]))  # STFT frames per output
        self.names = [node.name for node in session.get_inputs()][1:]
        self.state = [np.zeros(shape, np.float32) for shape in meta["streaming"]["state_shapes"]]
        self.pending = np.zeros(self.n_fft // 2, np.float32)  # the centred STFT's left padding
        self.received = self.frames_done = 0
        self.to_drop = dims["lookahead"]  # the look-ahead's first outputs lie before the start
        self.ending = None
        self.ids: list[int] = []
        self.previous = 0  # blank
        self.blank_penalty = meta.get("blank_penalty", 0.0)  # tuned on dev when the model was trained

    def _run(self, frames: int) -> np.ndarray:
        piece = self.pending[: self.n_fft + (frames - 1) * self.hop]
        self.pending = self.pending[frames * self.hop :]
        self.frames_done += frames
        ready, ending, *self.state = self.session.run(
            None, {"samples": piece[None], **dict(zip(self.names, self.state, strict=True))}
        )
        self.ending = ending[0]
        dropped = min(self.to_drop, ready.shape[1])
        self.to_drop -= dropped
        return ready[0, dropped:]

    def _decode(self, log_probs: np.ndarray) -> None:
        scores = log_probs.copy()
        scores[:, 0] -= self.blank_penalty
        for best in scores.argmax(-1):
            if best != 0 and best != self.previous:
                self.ids.append(int(best))
            self.previous = best

    def accept(self, samples: np.ndarray) -> np.ndarray:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32)])
        self.received += len(samples)
        available = (len(self.pending) - self.n_fft) // self.hop + 1 if len(self.pending) >= self.n_fft else 0
        frames = available // self.group * self.group
        log_probs = self._run(frames) if frames else np.zeros((0, len(self.tokens)), np.float32)
        self._decode(log_probs)
        return log_probs

    def finish(self) -> np.ndarray:
        self.pending = np.concatenate([self.pending, np.zeros(self.n_fft // 2, np.float32)])
        remaining = self.received // self.hop + 1 - self.frames_done
        ready = self._run(remaining) if remaining > 0 else np.zeros((0, len(self.tokens)), np.float32)
        log_probs = np.concatenate([ready, self.ending[self.to_drop :]])
        self._decode(log_probs)
        return log_probs

    @property
    def text(self) -> str:
        return "".join(self.tokens[i] for i in self.ids).strip()


def main(model_path: str, audio_path: str, chunk_ms: float = 160.0) -> None:
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    stream = OnnxStream(session)
    audio, rate = soundfile.read(audio_path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    chunk = max(1, round(rate * chunk_ms / 1000))
    for start in range(0, len(mono), chunk):
        stream.accept(mono[start : start + chunk])
        print(f"\r{stream.text}", end="", flush=True)
    stream.finish()
    print(f"\r{stream.text}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(float(a) for a in sys.argv[3:4]))
