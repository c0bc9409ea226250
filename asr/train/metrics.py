"""Training metrics to TensorBoard and, the same scalars, to ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from asr.fileio import write_text


class MetricsLogger:
    """``resume_step``: a run continued from a checkpoint of that step; the steps logged after it by
    the interrupted run are dropped from both logs, so every step appears once."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        path = run_dir / "metrics.jsonl"
        if resume_step is not None and path.is_file():
            rows = [
                line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()
            ]
            write_text(path, "".join(row for row in rows if _step(row) <= resume_step))
        purge_step = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)
        self.jsonl = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

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


def _step(row: str) -> float:
    try:
        return int(json.loads(row)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line cut short by a crash: dropped
