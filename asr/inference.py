"""Models to run, whatever they were saved as: a checkpoint (``.pt``), or an artifact of
``asr-export`` (``.onnx`` for onnxruntime, ``.ts`` for TorchScript). Each comes back behind the
model's interface: ``model(audio, lengths) -> (log_probs, frames)``, ``model.dims``,
``output_lengths`` and ``frame_shift_seconds`` (``asr.recognizer.Recognizer`` wraps them)."""

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

from asr.checkpoint import load_model
from asr.errors import UserError
from asr.models import DEFAULT, model_class
from asr.models.base import frame_shift_seconds, output_lengths
from asr.streaming import Step, StreamSpec, stream_log_probs
from asr.text import Tokenizer, tokenizer_from_dict

Run = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ExportedModel(nn.Module):
    """An exported artifact with the eager model's call, ``dims`` and frame arithmetic (from a
    weightless twin of the model it was exported from)."""

    def __init__(
        self,
        run: Run,
        name: str,
        dims: dict,
        stepper: Callable[[], tuple[Step, list]] | None = None,
        blank_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        self.run, self.name, self.blank_penalty = run, name, blank_penalty
        self.model_class = model_class(name)
        self.dims = self.model_class.Dims(**dims)
        self.stepper = stepper
        """A streaming export's ``Step`` and initial state (fresh for each stream); else None."""

    @property
    def time_subsampling(self) -> int:
        return self.model_class.subsampling(self.dims)

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return output_lengths(self.model_class, self.dims, sample_lengths)

    @property
    def frame_shift_seconds(self) -> float:
        return frame_shift_seconds(self.model_class, self.dims)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(audio, lengths)


def load_any(
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
    model = ExportedModel(
        run,
        meta.get("model_name", DEFAULT),
        meta["model_dims"],
        getattr(run, "stepper", None),
        float(meta.get("blank_penalty", 0.0)),
    )
    return model.eval(), tokenizer_from_dict(state)


def _load_onnx(path: Path, threads: int | None) -> tuple[Run, dict]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get("asr")
    if meta is None:
        raise UserError(f"{path}: an ONNX model without asr-export's metadata")
    meta = json.loads(meta)
    if "streaming" in meta:
        return _streaming_run(session, meta), meta

    def run(audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feeds = {
            "audio": audio.cpu().numpy().astype(np.float32),
            "lengths": lengths.cpu().numpy().astype(np.int64),
        }
        log_probs, frames = session.run(None, feeds)
        return torch.from_numpy(log_probs), torch.from_numpy(frames)

    return run, meta


def _streaming_run(session, meta: dict) -> Run:
    """A streaming export (its step graph) behind the whole-utterance call, one utterance at a
    time; ``run.stepper`` gives the step and initial state to ``asr.streaming.Stream``."""
    names = [node.name for node in session.get_inputs()][1:]
    shapes = meta["streaming"]["state_shapes"]
    cls = model_class(meta["model_name"])
    dims = cls.Dims(**meta["model_dims"])
    spec = StreamSpec(dims.n_fft, dims.hop_length, cls.subsampling(dims), dims.lookahead, dims.sample_rate)

    def step(samples: np.ndarray, state: list) -> tuple[np.ndarray, np.ndarray, list]:
        ready, ending, *state = session.run(
            None, {"samples": samples, **dict(zip(names, state, strict=True))}
        )
        return ready, ending, state

    def stepper() -> tuple[Step, list]:
        return step, [np.zeros(shape, np.float32) for shape in shapes]

    def run(audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = [
            torch.from_numpy(stream_log_probs(*stepper(), spec, samples[:n].cpu().numpy()))
            for samples, n in zip(audio, lengths.tolist(), strict=True)
        ]
        frames = torch.tensor([len(p) for p in pieces])
        return torch.nn.utils.rnn.pad_sequence(pieces, batch_first=True), frames

    run.stepper = stepper
    return run


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
