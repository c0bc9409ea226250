"""The configs shipped inside the package (Hydra's ``train.yaml`` and its groups), so an installed
wheel has them, and the models they describe."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from asr.errors import UserError
from asr.models import DEFAULT, CTCModel, build_model

CONFIG_DIR = str(Path(__file__).resolve().parent)


def model_from_settings(
    settings: dict, vocab_size: int, device: torch.device | str | None = None
) -> CTCModel:
    """The model a ``model`` config describes (``name`` and its dims) for ``vocab_size`` tokens."""
    settings = dict(settings)
    return build_model(settings.pop("name", DEFAULT), {**settings, "vocab_size": vocab_size}, device)


def configured_model(name: str, vocab_size: int, device: torch.device | str | None = None) -> CTCModel:
    """The model of ``asr/configs/model/<name>.yaml`` for ``vocab_size`` tokens."""
    path = Path(CONFIG_DIR) / "model" / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise UserError(f"model={name}: no such model config (choose from {choices})")
    return model_from_settings(OmegaConf.to_container(OmegaConf.load(path)), vocab_size, device)
