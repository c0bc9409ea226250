"""Transcribe audio files with an ONNX artifact of ``asr-export``, using onnxruntime, numpy and
soundfile only: no torch, no asr package. What a deployment needs, in one page.

    python scripts/onnx_transcribe.py runs/demo/model.onnx speech.wav [more.wav ...]
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime
import soundfile


def main(model_path: str, audio_paths: list[str]) -> None:
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["asr"])
    if meta["tokenizer"]["type"] != "char":
        sys.exit("this example decodes character models only")
    tokens = meta["tokenizer"]["tokens"]
    for path in audio_paths:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != meta["sample_rate"]:
            sys.exit(f"{path}: {rate} Hz; this example expects {meta['sample_rate']} Hz")
        mono = audio.mean(axis=1)[None]
        log_probs, frames = session.run(None, {"audio": mono, "lengths": np.array([mono.shape[1]], np.int64)})
        scores = log_probs[0, : frames[0]]
        scores[:, 0] -= meta.get("blank_penalty", 0.0)  # tuned on dev when the model was trained
        best = scores.argmax(-1)
        keep = np.insert(best[1:] != best[:-1], 0, True) & (best != 0)  # merge repeats, drop blanks
        print(f"{path}\t{''.join(tokens[i] for i in best[keep]).strip()}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
