"""``asr-export``: a checkpoint as one self-contained artifact: raw 16 kHz audio in, log-probs out.

    asr-export checkpoint=runs/demo/checkpoints/best.pt format=onnx output=runs/demo/model.onnx
    asr-export checkpoint=runs/demo/checkpoints/best.pt format=onnx quantize=int8 output=model.int8.onnx
    asr-export checkpoint=runs/demo/checkpoints/best.pt format=torchscript output=runs/demo/model.ts

The artifact holds the model with its frontend and, as JSON metadata (ONNX ``metadata_props`` /
TorchScript extra file ``asr.json``), the tokenizer, sample rate, model dims, seconds per output
frame and a hash of the training config. Inputs: ``audio`` ``(batch, samples)`` float32 and
``lengths`` ``(batch,)`` int64; outputs: ``log_probs`` ``(batch, frames, vocab)`` and ``frames``.
An ONNX artifact runs on onnxruntime alone (``scripts/onnx_transcribe.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import torch
from omegaconf import MISSING

from asr.align import seconds_per_frame
from asr.errors import UserError, exit_on_user_error
from asr.fileio import atomic_path
from asr.models import DeepSpeech2
from asr.text import Tokenizer
from asr.train.checkpoint import load_checkpoint, load_model

METADATA_KEY = "asr"
FORMAT_VERSION = 1


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


class Quantize(str, Enum):
    none = "none"
    int8 = "int8"
    """Dynamic int8 weights for the LSTMs (onnxruntime ``quantize_dynamic``, per channel)."""


@dataclass
class ExportConfig:
    checkpoint: str = MISSING
    format: ExportFormat = MISSING
    output: str = MISSING
    quantize: Quantize = Quantize.none


def metadata(model: DeepSpeech2, tokenizer: Tokenizer, config: dict | None) -> dict:
    state = tokenizer.to_dict()
    if "model" in state:  # SentencePiece's model is bytes: base64 in JSON
        state = {**state, "model": base64.b64encode(state["model"]).decode()}
    config_json = json.dumps(config or {}, sort_keys=True).encode()
    return {
        "format_version": FORMAT_VERSION, "sample_rate": model.dims.sample_rate, "tokenizer": state,
        "model_dims": asdict(model.dims), "seconds_per_frame": seconds_per_frame(model),
        "config_sha256": hashlib.sha256(config_json).hexdigest(),
    }  # fmt: skip


def example_inputs(model: DeepSpeech2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances of different lengths, so nothing is traced as a constant."""
    rate = model.dims.sample_rate
    return torch.randn(2, 2 * rate) * 0.1, torch.tensor([2 * rate, rate + 123])


def export_torchscript(model: DeepSpeech2, meta: dict, output: Path) -> None:
    with warnings.catch_warnings(), atomic_path(output) as temp:
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
        traced = torch.jit.trace(model, example_inputs(model), check_trace=False)
        torch.jit.save(traced, str(temp), _extra_files={"asr.json": json.dumps(meta)})


def export_onnx(model: DeepSpeech2, meta: dict, output: Path, quantize: Quantize) -> None:
    import onnx

    with atomic_path(output) as temp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and LSTM notes
        torch.onnx.export(
            model, example_inputs(model), str(temp), dynamo=False, opset_version=17,
            input_names=["audio", "lengths"], output_names=["log_probs", "frames"],
            dynamic_axes={"audio": {0: "batch", 1: "samples"}, "lengths": {0: "batch"},
                          "log_probs": {0: "batch", 1: "time"}, "frames": {0: "batch"}},
        )  # fmt: skip
        if quantize is Quantize.int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # The LSTMs only, per channel: quantising the frontend's mel matrix product too (the
            # default) raised the built-in test WER from 10.4% to 14.6%; this way it stays 10.4%.
            quantize_dynamic(str(temp), str(temp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["LSTM"])  # fmt: skip
        artifact = onnx.load(str(temp))
        artifact.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
        onnx.save(artifact, str(temp))


def export(cfg: ExportConfig) -> Path:
    fmt, quantize = ExportFormat(cfg.format), Quantize(cfg.quantize)
    if fmt is ExportFormat.torchscript and quantize is not Quantize.none:
        raise UserError("quantize=int8 is for format=onnx")
    model, tokenizer = load_model(cfg.checkpoint, torch.device("cpu"))
    meta = {
        **metadata(model, tokenizer, load_checkpoint(cfg.checkpoint).get("config")),
        "quantize": quantize.value,
    }
    output = Path(cfg.output)
    with torch.no_grad():
        if fmt is ExportFormat.onnx:
            export_onnx(model, meta, output, quantize)
        else:
            export_torchscript(model, meta, output)
    return output


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    from asr.evaluate import parse_cli

    cfg = parse_cli(ExportConfig, sys.argv[1:] if argv is None else argv)
    output = export(cfg)
    print(f"{cfg.checkpoint} -> {output} ({output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
