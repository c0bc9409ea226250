"""``streaming_conv_lstm``: the conv + LSTM family made causal, so it transcribes while the audio
arrives (DeepSpeech 2's streaming variant). Frame by frame:

- log-mel features normalised with fixed statistics (``RunningNorm``: running averages of the
  training batches), not per utterance, which would need the whole utterance;
- 2-D convolutions whose time kernels look back only (``conv_kernels``' time size, causal);
- a unidirectional LSTM stack;
- a look-ahead ("row") convolution: each output frame also sees ``lookahead`` future LSTM frames;
- a linear layer to CTC log-probs.

``step`` runs the same computation on the next piece of audio with the context of the previous
ones as explicit tensors (``initial_state``), which is what ``asr.streaming.Stream`` and the ONNX
export use; over any chunking its log-probs equal ``forward``'s over the whole utterance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from asr.models import register_model
from asr.models.base import CTCModel, FrontendDims, log_probs


@dataclass
class StreamingDims(FrontendDims):
    conv_channels: list[int] = field(default_factory=lambda: [32, 32])
    conv_kernels: list[list[int]] = field(default_factory=lambda: [[11, 5], [11, 5]])
    """(frequency, time) kernel of each conv layer; in time it covers the current and past frames."""
    conv_strides: list[list[int]] = field(default_factory=lambda: [[2, 2], [2, 2]])
    """(frequency, time) stride of each conv layer."""
    rnn_hidden: int = 384
    rnn_layers: int = 3
    lookahead: int = 2
    """Future output frames each output frame sees (the row convolution's right context)."""
    dropout: float = 0.1
    speech_range_db: float = 0.0
    """Unused: running statistics, not per-utterance ones, normalise a stream."""


class CausalConv(nn.Module):
    """Conv2d over ``(batch, channels, freq, time)`` that looks back ``kernel_time - 1`` frames,
    + BatchNorm + Hardtanh(0, 20). ``step`` takes those frames as its state."""

    def __init__(self, in_channels: int, out_channels: int, kernel: list[int], stride: list[int]) -> None:
        super().__init__()
        self.context, self.stride = kernel[1] - 1, stride[1]
        self.conv = nn.Conv2d(
            in_channels, out_channels, tuple(kernel), tuple(stride), (kernel[0] // 2, 0), bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.Hardtanh(0.0, 20.0)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.stride - 1) // self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(F.pad(x, (self.context, 0)))))

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: new frames (a multiple of the stride, or the last ones); ``state``: the
        ``context`` frames before them."""
        joined = torch.cat([state, x], dim=-1)
        return self.activation(self.norm(self.conv(joined))), joined[..., joined.shape[-1] - self.context :]


@register_model
class StreamingConvLSTM(CTCModel):
    name = "streaming_conv_lstm"
    Dims = StreamingDims

    def __init__(self, dims: StreamingDims) -> None:
        super().__init__(dims)
        channels = [1, *dims.conv_channels]
        self.convs = nn.ModuleList(
            CausalConv(channels[i], channels[i + 1], dims.conv_kernels[i], dims.conv_strides[i])
            for i in range(len(dims.conv_channels))
        )
        self.conv_freqs = [dims.n_mels]  # mel bins into each conv, and out of the last
        for kernel, stride in zip(dims.conv_kernels, dims.conv_strides, strict=True):
            self.conv_freqs.append((self.conv_freqs[-1] + 2 * (kernel[0] // 2) - kernel[0]) // stride[0] + 1)
        rnn_dropout = dims.dropout if dims.rnn_layers > 1 else 0.0
        self.rnn = nn.LSTM(
            channels[-1] * self.conv_freqs[-1],
            dims.rnn_hidden,
            dims.rnn_layers,
            batch_first=True,
            dropout=rnn_dropout,
        )
        self.lookahead = nn.Conv1d(
            dims.rnn_hidden, dims.rnn_hidden, dims.lookahead + 1, groups=dims.rnn_hidden
        )
        self.dropout = nn.Dropout(dims.dropout)
        self.output = nn.Linear(dims.rnn_hidden, dims.vocab_size)

    normalization = "running"

    @staticmethod
    def subsampling(dims: StreamingDims) -> int:
        product = 1
        for _, stride in dims.conv_strides:
            product *= stride
        return product

    @staticmethod
    def encoder_lengths(dims: StreamingDims, frame_lengths: torch.Tensor) -> torch.Tensor:
        for stride in dims.conv_strides:
            frame_lengths = (frame_lengths + stride[1] - 1) // stride[1]
        return frame_lengths

    def classify(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mels, frames)
        for conv in self.convs:
            x = conv(x)
            lengths = conv.output_lengths(lengths)
        x, _ = self.rnn(self.dropout(x.flatten(1, 2).transpose(1, 2)))
        mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        x = F.pad((x * mask[..., None]).transpose(1, 2), (0, self.dims.lookahead))
        return self.head(self.lookahead(x).transpose(1, 2)), lengths

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return log_probs(self.output(self.dropout(x)))

    # Streaming: the same computation, piece by piece.

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        """Zeros, as at the start of an utterance: each conv's past input frames, the LSTM's
        hidden and cell states, and the look-ahead's past LSTM outputs."""
        dims, device = self.dims, self.output.weight.device
        states = [
            torch.zeros(batch, conv.conv.in_channels, freq, conv.context, device=device)
            for conv, freq in zip(self.convs, self.conv_freqs, strict=False)
        ]
        hidden = torch.zeros(dims.rnn_layers, batch, dims.rnn_hidden, device=device)
        tail = torch.zeros(batch, dims.rnn_hidden, dims.lookahead, device=device)
        return [*states, hidden, hidden.clone(), tail]

    def step(self, samples: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``samples``: ``(batch, n_fft + (frames - 1) * hop)`` samples of the centred-padded audio
        stream making ``frames`` new STFT frames (a multiple of ``subsampling`` except at the end).
        Returns the log-probs of the output frames now complete (the look-ahead delays them by
        ``lookahead``; the first ``lookahead`` ever returned are before the start: drop them), the
        log-probs the last ``lookahead`` frames would have if the audio ended here, and the new
        state."""
        *conv_states, h, c, tail = state
        x = self.frontend.frames(samples).transpose(1, 2).unsqueeze(1)
        new_states = []
        for conv, conv_state in zip(self.convs, conv_states, strict=True):
            x, conv_state = conv.step(x, conv_state)
            new_states.append(conv_state)
        x, (h, c) = self.rnn(x.flatten(1, 2).transpose(1, 2), (h, c))
        joined = torch.cat([tail, x.transpose(1, 2)], dim=-1)
        ready = self.head(self.lookahead(joined).transpose(1, 2))
        new_tail = joined[..., joined.shape[-1] - self.dims.lookahead :]
        ending = ready[:, :0]  # no look-ahead: nothing held back
        if self.dims.lookahead:
            ending = self.head(self.lookahead(F.pad(new_tail, (0, self.dims.lookahead))).transpose(1, 2))
        return ready, ending, *new_states, h, c, new_tail
