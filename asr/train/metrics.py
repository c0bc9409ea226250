"""Training metrics to TensorBoard and, the same scalars, to ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter


class MetricsLogger:
    def __init__(self, run_dir: Path) -> None:
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()

    def spectrogram(self, step: int, name: str, features: torch.Tensor) -> None:
        """``features``: ``(frames, channels)``, drawn with low frequencies at the bottom."""
        image = features.T.flip(0)
        image = (image - image.min()) / (image.max() - image.min() + 1e-8)
        self.writer.add_image(name, image.unsqueeze(0), step)

    def text(self, step: int, name: str, text: str) -> None:
        self.writer.add_text(name, text, step)

    def close(self) -> None:
        self.writer.close()
        self.jsonl.close()
