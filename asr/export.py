"""``asr-export``: a checkpoint as one self-contained artifact: raw 16 kHz audio in, log-probs out.

    asr-export model=runs/demo/checkpoints/best.pt format=onnx output=runs/demo/model.onnx
    asr-export model=runs/demo/checkpoints/best.pt format=onnx quantize=int8 output=model.int8.onnx
    asr-export model=runs/demo/checkpoints/best.pt format=torchscript output=runs/demo/model.ts

The artifact holds the model with its frontend and, as JSON metadata (ONNX ``metadata_props`` /
TorchScript extra file ``asr.json``), the tokenizer, sample rate, model name and dims, seconds per
output frame and a hash of the training config. Inputs: ``audio`` ``(batch, samples)`` float32 and
``lengths`` ``(batch,)`` int64; outputs: ``log_probs`` ``(batch, frames, vocab)`` and ``frames``.
An ONNX artifact runs on onnxruntime alone (``scripts/onnx_transcribe.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import torch
from omegaconf import MISSING
from torch import nn

from asr.checkpoint import load_checkpoint, load_model
from asr.cli import run_tool
from asr.errors import UserError
from asr.fileio import atomic_path
from asr.models import CTCModel
from asr.text import Tokenizer

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
    model: str = MISSING
    """A checkpoint written by asr-train (``best.pt``, ``averaged.pt``, ...)."""
    format: ExportFormat = MISSING
    """onnx (for onnxruntime) or torchscript."""
    output: str = MISSING
    quantize: Quantize = Quantize.none
    """int8: the LSTMs' weights per channel (format=onnx)."""


def metadata(model: CTCModel, tokenizer: Tokenizer, config: dict | None) -> dict:
    state = tokenizer.to_dict()
    if "model" in state:  # SentencePiece's model is bytes: base64 in JSON
        state = {**state, "model": base64.b64encode(state["model"]).decode()}
    config_json = json.dumps(config or {}, sort_keys=True).encode()
    return {
        "format_version": FORMAT_VERSION, "sample_rate": model.dims.sample_rate, "tokenizer": state,
        "model_name": model.name, "model_dims": asdict(model.dims),
        "seconds_per_frame": model.frame_shift_seconds, "blank_penalty": model.blank_penalty,
        "config_sha256": hashlib.sha256(config_json).hexdigest(),
    }  # fmt: skip


def example_inputs(model: CTCModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances of different lengths, so nothing is traced as a constant."""
    rate = model.dims.sample_rate
    return torch.randn(2, 2 * rate) * 0.1, torch.tensor([2 * rate, rate + 123])


def export_torchscript(model: CTCModel, meta: dict, output: Path) -> None:
    with warnings.catch_warnings(), atomic_path(output) as temp:
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
        traced = torch.jit.trace(model, example_inputs(model), check_trace=False)
        torch.jit.save(traced, str(temp), _extra_files={"asr.json": json.dumps(meta)})


def export_onnx(model: CTCModel, meta: dict, output: Path, quantize: Quantize) -> None:
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


class StreamingStep(nn.Module):
    """A streaming model's ``step`` as a module: padded samples and the state in, the ready and
    ending log-probs and the next state out (``asr.streaming.Stream`` drives it)."""

    def __init__(self, model: CTCModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, samples: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.step(samples, *state)


def export_streaming_onnx(model: CTCModel, meta: dict, output: Path) -> None:
    """The step graph, with the state as explicit inputs and outputs (``state_<i>`` in,
    ``next_state_<i>`` out; their shapes in the metadata, zeros at the start)."""
    import onnx

    state = model.initial_state()
    hop, n_fft, group = model.dims.hop_length, model.dims.n_fft, model.time_subsampling
    samples = torch.randn(1, n_fft + (2 * group - 1) * hop) * 0.1
    names = [f"state_{i}" for i in range(len(state))]
    outputs = ["log_probs", "ending", *(f"next_{name}" for name in names)]
    meta = {**meta, "streaming": {"state_shapes": [list(s.shape) for s in state]}}
    with atomic_path(output) as temp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            StreamingStep(model), (samples, *state), str(temp), dynamo=False, opset_version=17,
            input_names=["samples", *names], output_names=outputs,
            dynamic_axes={"samples": {1: "samples"}, "log_probs": {1: "time"}},
        )  # fmt: skip
        artifact = onnx.load(str(temp))
        artifact.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
        onnx.save(artifact, str(temp))


def export(cfg: ExportConfig) -> Path:
    fmt, quantize = ExportFormat(cfg.format), Quantize(cfg.quantize)
    if fmt is ExportFormat.torchscript and quantize is not Quantize.none:
        raise UserError("quantize=int8 is for format=onnx")
    model, tokenizer = load_model(cfg.model, torch.device("cpu"))
    meta = {
        **metadata(model, tokenizer, load_checkpoint(cfg.model).get("config")),
        "quantize": quantize.value,
    }
    output = Path(cfg.output)
    with torch.no_grad():
        if fmt is ExportFormat.onnx and hasattr(model, "step"):
            if quantize is not Quantize.none:
                raise UserError("quantize=int8 is not available for streaming models yet")
            export_streaming_onnx(model, meta, output)
        elif fmt is ExportFormat.onnx:
            export_onnx(model, meta, output, quantize)
        else:
            export_torchscript(model, meta, output)
    print(f"{cfg.model} -> {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return output


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-export", ExportConfig, export, argv)


if __name__ == "__main__":
    main()
