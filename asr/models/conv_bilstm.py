"""``conv_bilstm``: 2-D convolutions over log-mel, then a BiLSTM stack, then a linear layer to CTC
log-probs; in the style of DeepSpeech2 (``model=ds2`` gives it DeepSpeech2's size). Its dims are
stored in every checkpoint: loading needs no config files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from asr.models import register_model
from asr.models.base import CTCModel, FrontendDims, log_probs


@dataclass
class ConvBiLSTMDims(FrontendDims):
    conv_channels: list[int] = field(default_factory=lambda: [32, 32])
    conv_kernels: list[list[int]] = field(default_factory=lambda: [[41, 11], [21, 11]])
    """(frequency, time) kernel of each conv layer."""
    conv_strides: list[list[int]] = field(default_factory=lambda: [[2, 2], [2, 1]])
    """(frequency, time) stride of each conv layer."""
    rnn_hidden: int = 256
    rnn_layers: int = 3
    dropout: float = 0.1


def conv_output_length(length: torch.Tensor | int, kernel: int, stride: int) -> torch.Tensor | int:
    """Length after a conv with "same"-style padding ``kernel // 2``."""
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm + Hardtanh(0, 20), then zeroing the frames past each utterance's end,
    so an utterance's output does not depend on how much padding its batch carries."""

    def __init__(self, in_channels: int, out_channels: int, kernel: list[int], stride: list[int]) -> None:
        super().__init__()
        self.kernel_time, self.stride_time = kernel[1], stride[1]
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, tuple(kernel), tuple(stride), padding, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.Hardtanh(0.0, 20.0)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_length(lengths, self.kernel_time, self.stride_time)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``(batch, channels, freq, time)``."""
        x = self.activation(self.norm(self.conv(x)))
        lengths = self.output_lengths(lengths)
        mask = torch.arange(x.shape[-1], device=x.device) < lengths[:, None]
        return x * mask[:, None, None, :], lengths


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each utterance of ``(batch, time, channels)`` within its own length; padding stays put."""
    time = torch.arange(x.shape[1], device=x.device)
    index = torch.where(time < lengths[:, None], lengths[:, None] - 1 - time, time)
    return x.gather(1, index[..., None].expand_as(x))


class BiLSTM(nn.Module):
    """A bidirectional LSTM stack that is exact on padded batches.

    The backward direction reads each utterance reversed within its own length, so padding never
    reaches a valid frame. This matches packed sequences, at the speed of the padded (oneDNN) path:
    torch's CPU LSTM over packed sequences was 2.2x (4.5 s utterances) to 3.8x (12 s) slower
    here, forward + backward (scripts/bench_model.py).
    """

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        sizes = [input_size] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for layer, (forward, backward) in enumerate(
            zip(self.forward_layers, self.backward_layers, strict=True)
        ):
            if layer:
                x = self.dropout(x)
            reversed_output, _ = backward(reverse_padded(x, lengths))
            x = torch.cat([forward(x)[0], reverse_padded(reversed_output, lengths)], dim=-1)
        return x


@register_model
class ConvBiLSTM(CTCModel):
    name = "conv_bilstm"
    Dims = ConvBiLSTMDims

    def __init__(self, dims: ConvBiLSTMDims) -> None:
        super().__init__(dims)
        channels = [1, *dims.conv_channels]
        self.convs = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1], dims.conv_kernels[i], dims.conv_strides[i])
            for i in range(len(dims.conv_channels))
        )
        freq = dims.n_mels
        for kernel, stride in zip(dims.conv_kernels, dims.conv_strides, strict=True):
            freq = conv_output_length(freq, kernel[0], stride[0])
        self.rnn = BiLSTM(channels[-1] * freq, dims.rnn_hidden, dims.rnn_layers, dims.dropout)
        self.dropout = nn.Dropout(dims.dropout)
        self.output = nn.Linear(2 * dims.rnn_hidden, dims.vocab_size)

    @staticmethod
    def subsampling(dims: ConvBiLSTMDims) -> int:
        product = 1
        for _, stride in dims.conv_strides:
            product *= stride
        return product

    @staticmethod
    def encoder_lengths(dims: ConvBiLSTMDims, frame_lengths: torch.Tensor) -> torch.Tensor:
        for kernel, stride in zip(dims.conv_kernels, dims.conv_strides, strict=True):
            frame_lengths = conv_output_length(frame_lengths, kernel[1], stride[1])
        return frame_lengths

    def classify(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mels, frames)
        for conv in self.convs:
            x, lengths = conv(x, lengths)
        x = x.flatten(1, 2).transpose(1, 2)  # (batch, time, channels * freq)
        x = self.rnn(x, lengths)
        return log_probs(self.output(self.dropout(x))), lengths
