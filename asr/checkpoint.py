"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only.

A checkpoint holds everything needed to use the model (``model_name``, ``model_dims``, ``model``,
``tokenizer``) and, for ``last.pt``, everything needed to continue training (optimiser, scheduler,
progress, RNG). Checkpoints from before models had names are ``conv_bilstm``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from asr.errors import UserError
from asr.fileio import atomic_path
from asr.models import DEFAULT, CTCModel, build_model
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


def model_payload(model: CTCModel, tokenizer: Tokenizer) -> dict:
    return {
        "model_name": model.name, "model_dims": asdict(model.dims), "model": model.state_dict(),
        "tokenizer": tokenizer.to_dict(), "blank_penalty": model.blank_penalty,
    }  # fmt: skip


def model_identity(checkpoint: dict) -> tuple[str, dict | None]:
    """What model a checkpoint holds: its name and dims (those written before ``speech_range_db``
    existed normalised features over all frames)."""
    dims = checkpoint.get("model_dims")
    if isinstance(dims, dict):
        dims = {"speech_range_db": 0.0, **dims}
    return checkpoint.get("model_name", DEFAULT), dims


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[CTCModel, Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer of a checkpoint; no config needed."""
    checkpoint = load_checkpoint(path)
    try:
        name, dims = model_identity(checkpoint)
        model = build_model(name, dims)
        model.load_state_dict(checkpoint["model"])
        tokenizer = tokenizer_from_dict(checkpoint["tokenizer"])
        model.blank_penalty = float(checkpoint.get("blank_penalty", 0.0))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: checkpoint does not hold a usable model ({error})") from None
    return model.to(device).eval(), tokenizer


def average_checkpoints(paths: list[Path]) -> dict:
    """The model payload of ``paths[0]`` with every floating-point tensor of the model averaged
    over all ``paths`` (counters such as BatchNorm's ``num_batches_tracked`` come from the last)."""
    if not paths:
        raise UserError("no checkpoints to average")
    checkpoints = [load_checkpoint(path) for path in paths]
    identity = model_identity(checkpoints[0])
    for path, checkpoint in zip(paths, checkpoints, strict=True):
        if "model" not in checkpoint or model_identity(checkpoint) != identity:
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
        key: checkpoints[0][key]
        for key in ("model_name", "model_dims", "tokenizer", "config")
        if key in checkpoints[0]
    }
    return {**payload, "model": averaged, "averaged_from": [str(path) for path in paths]}
