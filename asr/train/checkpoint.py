"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only.

A checkpoint holds everything needed to use the model (``model_dims``, ``model``, ``tokenizer``)
and, for ``last.pt``, everything needed to continue training (optimiser, scheduler, progress, RNG).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from asr.errors import UserError
from asr.fileio import atomic_path
from asr.models import DeepSpeech2, ModelDims
from asr.text import Tokenizer, tokenizer_from_dict


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None


def model_payload(model: DeepSpeech2, tokenizer: Tokenizer) -> dict:
    return {"model_dims": asdict(model.dims), "model": model.state_dict(), "tokenizer": tokenizer.to_dict()}


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[DeepSpeech2, Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer of a checkpoint; no config needed."""
    checkpoint = load_checkpoint(path)
    try:
        model = DeepSpeech2(ModelDims(**checkpoint["model_dims"]))
        model.load_state_dict(checkpoint["model"])
        tokenizer = tokenizer_from_dict(checkpoint["tokenizer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: checkpoint does not hold a usable model ({error})") from None
    return model.to(device).eval(), tokenizer


def average_checkpoints(paths: list[Path]) -> dict:
    """The model payload of ``paths[0]`` with every floating-point tensor of the model averaged
    over all ``paths`` (counters such as BatchNorm's ``num_batches_tracked`` come from the last)."""
    if not paths:
        raise UserError("no checkpoints to average")
    checkpoints = [load_checkpoint(path) for path in paths]
    dims = checkpoints[0].get("model_dims")
    for path, checkpoint in zip(paths, checkpoints, strict=True):
        if "model" not in checkpoint or checkpoint.get("model_dims") != dims:
            raise UserError(f"{path}: not a checkpoint of the same model as {paths[0]}")
    averaged = {}
    for name, last in checkpoints[-1]["model"].items():
        if last.is_floating_point():
            averaged[name] = (
                torch.stack([c["model"][name].float() for c in checkpoints]).mean(0).to(last.dtype)
            )
        else:
            averaged[name] = last
    payload = {
        key: checkpoints[0][key] for key in ("model_dims", "tokenizer", "config") if key in checkpoints[0]
    }
    return {**payload, "model": averaged, "averaged_from": [str(path) for path in paths]}
