"""``tdnn``: a time-delay neural network, 1-D dilated convolutions over log-mel frames, each with
batch norm and ReLU, then a linear layer to CTC log-probs. No recurrence: every output frame sees a
fixed window of audio, which makes it quick to train and to run. Select it with ``model=tdnn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from asr.models import register_model
from asr.models.base import CTCModel, FrontendDims, log_probs


@dataclass
class TDNNDims(FrontendDims):
    channels: list[int] = field(default_factory=lambda: [256, 256, 256, 256, 256])
    kernels: list[int] = field(default_factory=lambda: [5, 3, 3, 3, 1])
    dilations: list[int] = field(default_factory=lambda: [1, 2, 3, 1, 1])
    strides: list[int] = field(default_factory=lambda: [2, 1, 2, 1, 1])
    """Time stride of each layer; their product is the model's time subsampling."""
    dropout: float = 0.1


def _conv_length(length: torch.Tensor, kernel: int, dilation: int, stride: int) -> torch.Tensor:
    span = dilation * (kernel - 1)
    return (length + 2 * (span // 2) - span - 1) // stride + 1


@register_model
class TDNN(CTCModel):
    name = "tdnn"
    Dims = TDNNDims

    def __init__(self, dims: TDNNDims) -> None:
        super().__init__(dims)
        if not len(dims.channels) == len(dims.kernels) == len(dims.dilations) == len(dims.strides):
            raise ValueError("model.channels, kernels, dilations and strides need one entry per layer")
        sizes = [dims.n_mels, *dims.channels]
        self.layers = nn.ModuleList(
            nn.Conv1d(sizes[i], sizes[i + 1], kernel, stride, dilation * (kernel - 1) // 2, dilation)
            for i, (kernel, dilation, stride) in enumerate(
                zip(dims.kernels, dims.dilations, dims.strides, strict=True)
            )
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(size) for size in dims.channels)
        self.dropout = nn.Dropout(dims.dropout)
        self.output = nn.Linear(dims.channels[-1], dims.vocab_size)

    @staticmethod
    def subsampling(dims: TDNNDims) -> int:
        product = 1
        for stride in dims.strides:
            product *= stride
        return product

    @staticmethod
    def encoder_lengths(dims: TDNNDims, frame_lengths: torch.Tensor) -> torch.Tensor:
        for kernel, dilation, stride in zip(dims.kernels, dims.dilations, dims.strides, strict=True):
            frame_lengths = _conv_length(frame_lengths, kernel, dilation, stride)
        return frame_lengths

    def classify(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.transpose(1, 2)  # (batch, n_mels, frames)
        for layer, norm, kernel, dilation, stride in zip(
            self.layers, self.norms, self.dims.kernels, self.dims.dilations, self.dims.strides, strict=True
        ):
            x = self.dropout(torch.relu(norm(layer(x))))
            lengths = _conv_length(lengths, kernel, dilation, stride)
            x = x * (torch.arange(x.shape[-1], device=x.device) < lengths[:, None])[:, None, :]
        return log_probs(self.output(x.transpose(1, 2))), lengths
