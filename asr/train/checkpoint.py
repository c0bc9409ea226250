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
from asr.text import CharTokenizer


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


def model_payload(model: DeepSpeech2, tokenizer: CharTokenizer) -> dict:
    return {"model_dims": asdict(model.dims), "model": model.state_dict(), "tokenizer": tokenizer.to_dict()}


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[DeepSpeech2, CharTokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer of a checkpoint; no config needed."""
    checkpoint = load_checkpoint(path)
    try:
        model = DeepSpeech2(ModelDims(**checkpoint["model_dims"]))
        model.load_state_dict(checkpoint["model"])
        tokenizer = CharTokenizer.from_dict(checkpoint["tokenizer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: checkpoint does not hold a usable model ({error})") from None
    return model.to(device).eval(), tokenizer
