"""Structured schema of the training configuration; the YAML files in ``configs/`` fill it in.

Defaults live here, not in ``cfg.get`` calls; Hydra rejects unknown keys and ill-typed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from asr.data.synthetic import CorpusSpec
from asr.models import ModelDims
from asr.runtime import Device, Precision


@dataclass
class SyntheticCorpusConfig(CorpusSpec):
    """The built-in corpus, synthesised into ``root`` before training if it is not there yet."""

    root: str = "data/synthetic"


@dataclass
class DataConfig:
    train_manifest: str = MISSING
    dev_manifest: str = MISSING
    test_manifest: str | None = None
    synthetic: SyntheticCorpusConfig | None = None
    batch_size: int = 16
    num_workers: int = 0
    """DataLoader worker processes; on a 2-core machine they compete with the model for cores."""


@dataclass
class CTCConfig:
    backend: str = "native"
    zero_infinity: bool = True
    """An infeasible utterance (too short for its transcript) then adds no loss and no gradient."""


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 300
    min_lr_ratio: float = 0.02
    decay_steps: int | None = None
    """Cosine decay reaches ``lr * min_lr_ratio`` at this step; None: the last planned step
    (``trainer.max_steps``, else ``trainer.max_epochs`` epochs)."""


@dataclass
class TrainerConfig:
    max_epochs: int = 8
    max_steps: int | None = None
    max_time_minutes: float | None = None
    """Wall-clock budget of this invocation; training stops cleanly (evaluated, saved) when spent."""
    device: Device = Device.auto
    precision: Precision = Precision.fp32
    """bf16: the model's forward in bfloat16 autocast (CTC stays float32)."""
    grad_clip: float = 5.0
    eval_every_steps: int | None = None
    """Dev evaluation and ``last`` checkpoint every N steps; None: at the end of every epoch."""
    num_examples: int = 4
    """Decoded dev examples written to TensorBoard at each evaluation."""
    seed: int = 0
    resume: bool = False
    """Continue from ``<run dir>/checkpoints/last.pt``."""
    progress: bool = True


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelDims = field(default_factory=ModelDims)
    ctc: CTCConfig = field(default_factory=CTCConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def register_schema() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
