"""The pieces a training run is made of, each built from its config group: the plan (how long),
the optimiser and learning-rate schedule (registries: ``optim.name``, ``optim.schedule``), the
tokenizer, the checked data, augmentation and the forward pass DDP wraps."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from asr.augment import SpecAugment, WaveformAugment
from asr.data.manifest import Utterance, read_manifest
from asr.data.prepare import learn_pieces
from asr.data.validate import find_problems, screen
from asr.errors import UserError
from asr.models import CTCModel
from asr.text import CharTokenizer, SentencePieceTokenizer, Tokenizer
from asr.train import distributed
from asr.train.config import TokenizerKind
from asr.train.distributed import World


def _adamw(params, o: DictConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def _adam(params, o: DictConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def _sgd(params, o: DictConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=o.lr, momentum=o.betas[0], nesterov=True, weight_decay=o.weight_decay)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adamw": _adamw, "adam": _adam, "sgd": _sgd}
"""``optim.name`` -> the optimiser over some parameters, given the ``optim`` group."""

DECAYS: dict[str, Callable[[float], float]] = {
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),
    "linear": lambda progress: 1 - progress,
    "constant": lambda progress: 1.0,
}
"""``optim.schedule`` -> the learning-rate factor after warm-up (1 to 0) as progress goes 0 to 1."""


def registered(registry: dict, key: str, value: str):
    if value not in registry:
        close = difflib.get_close_matches(value, list(registry), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UserError(f"{key}={value}: expected one of {', '.join(registry)}{hint}")
    return registry[value]


@dataclasses.dataclass
class Plan:
    """How long the run goes: ``max_epochs`` (of ``steps_per_epoch``), ``max_steps`` and the time
    ``budget`` in seconds, whichever ends first; any of them may be infinite."""

    steps_per_epoch: int
    max_epochs: float
    max_steps: float
    budget: float

    @classmethod
    def from_config(cls, trainer: DictConfig, steps_per_epoch: int) -> Plan:
        """Without any limit in ``trainer``, 8 epochs."""
        epochs = trainer.max_epochs
        if epochs is None:
            epochs = 8 if trainer.max_steps is None and trainer.max_time_minutes is None else math.inf
        steps = math.inf if trainer.max_steps is None else trainer.max_steps
        budget = math.inf if trainer.max_time_minutes is None else 60 * trainer.max_time_minutes
        return cls(steps_per_epoch, epochs, steps, budget)

    @property
    def total_steps(self) -> float:
        return min(self.max_epochs * self.steps_per_epoch, self.max_steps)


@dataclasses.dataclass
class Schedule:
    """Learning-rate factor of a step: linear warm-up over ``warmup_steps``, then ``decay`` to
    ``min_ratio`` as training progresses, the progress being the larger of the steps done over
    ``total_steps`` and the time spent (``elapsed``, kept up to date by the loop) over ``budget``
    seconds. Either horizon may be infinite."""

    warmup_steps: int
    total_steps: float
    budget: float
    min_ratio: float
    decay: Callable[[float], float] = DECAYS["cosine"]
    elapsed: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        by_steps = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(by_steps, self.elapsed / self.budget))
        return self.min_ratio + (1 - self.min_ratio) * self.decay(progress)


def build_optimizer(optim: DictConfig, model: nn.Module, plan: Plan):
    """The optimiser, its ``LambdaLR`` and the ``Schedule`` behind it (whose ``elapsed`` the loop
    updates). A decay fixed in steps (``optim.decay_steps``) ignores the clock."""
    optimizer = registered(OPTIMIZERS, "optim.name", optim.name)(model.parameters(), optim)
    decay = registered(DECAYS, "optim.schedule", optim.schedule)
    horizon, budget = (optim.decay_steps, math.inf) if optim.decay_steps else (plan.total_steps, plan.budget)
    schedule = Schedule(optim.warmup_steps, horizon, budget, optim.min_lr_ratio, decay)
    # A lambda, not the Schedule itself, which LambdaLR would save and restore over the config.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
    return optimizer, scheduler, schedule


def build_tokenizer(cfg: DictConfig, run_dir: Path, world: World) -> Tokenizer:
    """Characters, or SentencePiece pieces learnt from the training transcripts by rank 0 (once:
    ``<run dir>/tokenizer.model`` is reused when the run resumes)."""
    kind = cfg.tokenizer.type
    if kind == TokenizerKind.char:
        return CharTokenizer()
    path = run_dir / "tokenizer.model"
    if world.is_main:
        learn_pieces(cfg.data.train_manifest, kind.value, cfg.tokenizer.vocab_size, path)
    distributed.broadcast(None)  # the others wait for the file
    return SentencePieceTokenizer(path.read_bytes())


def checked_utterances(cfg: DictConfig, model: CTCModel, tokenizer: Tokenizer, world: World):
    """Train and dev utterances after ``asr-validate``'s checks. Each rank checks every
    ``world.size``-th utterance and the problems are gathered, so 960 hours take N times less and
    no rank waits alone in a collective; every rank applies ``data.on_bad_sample`` to the same
    list, so all stop or skip together. Dev data needs no CTC path."""
    skip = cfg.data.on_bad_sample == "skip"
    checked = []
    for name, check_length in ((cfg.data.train_manifest, True), (cfg.data.dev_manifest, False)):
        utterances = read_manifest(name)
        problems = []
        if cfg.data.validate:
            mine = find_problems(
                utterances, tokenizer, model, check_length=check_length,
                progress=cfg.trainer.progress and world.is_main, share=(world.rank, world.size),
            )  # fmt: skip
            problems = sorted((p for part in distributed.gather(mine) for p in part), key=lambda p: p.index)
        checked.append(screen(utterances, problems, skip, name))
    return checked


def waveform_augment(aug: DictConfig, sample_rate: int) -> WaveformAugment:
    noises: list[Utterance] = [] if aug.noise_manifest is None else read_manifest(aug.noise_manifest)
    if any(factor <= 0 for factor in aug.speed_factors) or len(aug.noise_snr_db) != 2:
        raise UserError("augment.speed_factors must be positive and augment.noise_snr_db a [low, high] pair")
    if aug.pad_seconds < 0:
        raise UserError(f"augment.pad_seconds={aug.pad_seconds}: must be 0 or more")
    return WaveformAugment(
        sample_rate, list(aug.speed_factors), noises, aug.noise_probability, tuple(aug.noise_snr_db),
        aug.pad_seconds,
    )  # fmt: skip


class TrainingForward(nn.Module):
    """What DDP wraps: the model's forward with vocal tract length perturbation (``vtlp``: warp
    factors drawn from ``[1 - vtlp, 1 + vtlp]``) in its frontend and SpecAugment between its
    frontend and network, both in training mode only."""

    def __init__(self, model: CTCModel, spec_augment: SpecAugment, vtlp: float = 0.0) -> None:
        super().__init__()
        self.model, self.spec_augment, self.vtlp = model, spec_augment, vtlp

    @classmethod
    def from_config(cls, model: CTCModel, aug: DictConfig) -> TrainingForward:
        return cls(
            model, SpecAugment(aug.freq_masks, aug.freq_width, aug.time_masks, aug.time_width), aug.vtlp
        )

    def forward(self, waveforms: torch.Tensor, sample_lengths: torch.Tensor):
        warp = None
        if self.training and self.vtlp > 0:
            warp = 1 + self.vtlp * (2 * torch.rand(len(waveforms), device=waveforms.device) - 1)
        features, lengths = self.model.frontend(waveforms, sample_lengths, warp)
        return self.model.classify(self.spec_augment(features, lengths), lengths)


def data_workers(setting: int | None, device: torch.device) -> int:
    """``data.num_workers``: as set, else one per usable core up to 8 on a GPU, none on a CPU."""
    if setting is not None:
        return setting
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores - 1))
