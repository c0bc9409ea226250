"""``asr-average``: one model from the average of several checkpoints' weights.

asr-average run=runs/demo                       # the run's kept best -> checkpoints/averaged.pt
asr-average checkpoints=[a.pt,b.pt,c.pt] output=averaged.pt
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asr.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from asr.cli import run_tool
from asr.errors import UserError


@dataclass
class AverageConfig:
    run: str | None = None
    """A training run directory: average the best checkpoints it kept (``trainer.keep_best``)."""
    checkpoints: list[str] = field(default_factory=list)
    output: str | None = None
    """Default: ``<run>/checkpoints/averaged.pt``."""


def checkpoint_paths(cfg: AverageConfig) -> list[Path]:
    if (cfg.run is None) == (not cfg.checkpoints):
        raise UserError("give either run=DIR or checkpoints=[a.pt,b.pt,...]")
    if cfg.run is None:
        return [Path(path) for path in cfg.checkpoints]
    folder = Path(cfg.run) / "checkpoints"
    kept = load_checkpoint(folder / "last.pt").get("train_state", {}).get("kept", [])
    if not kept:
        raise UserError(f"{folder / 'last.pt'}: the run has kept no evaluated checkpoints yet")
    return [folder / entry["file"] for entry in kept]


def average(cfg: AverageConfig) -> None:
    paths = checkpoint_paths(cfg)
    if cfg.output is None and cfg.run is None:
        raise UserError("output=PATH is required with checkpoints=[...]")
    output = Path(cfg.output) if cfg.output is not None else Path(cfg.run) / "checkpoints" / "averaged.pt"
    save_checkpoint(output, average_checkpoints(paths))
    print(f"averaged {len(paths)} checkpoints -> {output}")


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-average", AverageConfig, average, argv)


if __name__ == "__main__":
    main()
