"""Acoustic models, registered by name: ``model.name=conv_bilstm`` in a config, ``model_name`` in a
checkpoint. A model is one file in this package that subclasses ``CTCModel`` and is decorated with
``@register_model``; it is found without being named anywhere else."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil

import torch

from asr.errors import UserError
from asr.models.base import CTCModel, FrontendDims

MODELS: dict[str, type[CTCModel]] = {}
DEFAULT = "conv_bilstm"
"""The model of checkpoints saved before models had names."""


def register_model(cls: type[CTCModel]) -> type[CTCModel]:
    MODELS[cls.name] = cls
    return cls


def model_class(name: str) -> type[CTCModel]:
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(sorted(MODELS))})"
        raise UserError(f"model.name={name!r} is not a model{hint}")
    return MODELS[name]


def build_model(name: str, dims: dict, device: torch.device | str | None = None) -> CTCModel:
    """A model of the registered ``name`` with ``dims`` (its ``Dims`` fields; unknown ones are an
    error naming the nearest), its parameters created on ``device``."""
    cls = model_class(name)
    known = [field.name for field in dataclasses.fields(cls.Dims)]
    for key in dims:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise UserError(
                f"model.{key}: {name} has no such setting" + (f"; did you mean {close[0]}?" if close else "")
            )
    with torch.device(device) if device is not None else torch.device("cpu"):
        try:
            return cls(cls.Dims(**dims))
        except ValueError as error:  # a setting the model refuses
            raise UserError(f"model {name}: {error}") from None


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from asr.models.conv_bilstm import ConvBiLSTM, ConvBiLSTMDims  # noqa: E402

__all__ = ["CTCModel", "ConvBiLSTM", "ConvBiLSTMDims", "FrontendDims", "MODELS", "build_model", "model_class",
           "register_model"]  # fmt: skip
