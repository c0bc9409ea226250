"""Models to run, whatever they were saved as: a checkpoint (``.pt``), or an artifact of
``asr-export`` (``.onnx`` for onnxruntime, ``.ts`` for TorchScript). Each comes back behind the
model's interface: ``model(audio, lengths) -> (log_probs, frames)`` and ``model.dims``."""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asr.errors import UserError
from asr.models import ModelDims
from asr.text import Tokenizer, tokenizer_from_dict
from asr.train.checkpoint import load_model

Run = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ExportedModel(nn.Module):
    """An exported artifact with the eager model's call and ``dims``."""

    def __init__(self, run: Run, dims: ModelDims) -> None:
        super().__init__()
        self.run, self.dims = run, dims

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(audio, lengths)


def load_recognizer(
    path: str | os.PathLike, device: torch.device, threads: int | None = None
) -> tuple[nn.Module, Tokenizer]:
    """The model (eval mode) and tokenizer of a checkpoint or exported artifact. ``threads``: for
    onnxruntime (None: its default)."""
    path = Path(path)
    if path.suffix not in (".onnx", ".ts"):
        return load_model(path, device)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        run, meta = _load_onnx(path, threads) if path.suffix == ".onnx" else _load_torchscript(path, device)
    except UserError:
        raise
    except Exception as error:  # onnxruntime and torch.jit raise many types for a bad file
        raise UserError(
            f"{path}: not a readable {path.suffix[1:]} artifact ({type(error).__name__})"
        ) from None
    state = meta["tokenizer"]
    if "model" in state:
        state = {**state, "model": base64.b64decode(state["model"])}
    return ExportedModel(run, ModelDims(**meta["model_dims"])).eval(), tokenizer_from_dict(state)


def _load_onnx(path: Path, threads: int | None) -> tuple[Run, dict]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get("asr")
    if meta is None:
        raise UserError(f"{path}: an ONNX model without asr-export's metadata")

    def run(audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feeds = {
            "audio": audio.cpu().numpy().astype(np.float32),
            "lengths": lengths.cpu().numpy().astype(np.int64),
        }
        log_probs, frames = session.run(None, feeds)
        return torch.from_numpy(log_probs), torch.from_numpy(frames)

    return run, json.loads(meta)


def _load_torchscript(path: Path, device: torch.device) -> tuple[Run, dict]:
    extra = {"asr.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    if not extra["asr.json"]:
        raise UserError(f"{path}: a TorchScript module without asr-export's metadata")
    module.eval()

    def run(audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return module(audio.to(device), lengths.to(device))

    return run, json.loads(extra["asr.json"])
