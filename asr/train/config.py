"""Structured schema of the training configuration; the YAML files in ``asr/configs/`` fill it in.

Defaults live here, not in ``cfg.get`` calls; Hydra rejects unknown keys and ill-typed values.
The ``model`` group is the exception: each model has its own dims (``asr/models/``), checked when
the model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from asr.data.synthetic import CorpusSpec
from asr.errors import UserError
from asr.models import DEFAULT as DEFAULT_MODEL
from asr.runtime import Device, Precision


@dataclass
class SyntheticCorpusConfig(CorpusSpec):
    """The built-in corpus, synthesised into ``root`` before training if it is not there yet."""

    root: str = "data/synthetic"


class BadSamplePolicy(str, Enum):
    error = "error"
    skip = "skip"


@dataclass
class DataConfig:
    train_manifest: str = MISSING
    dev_manifest: str = MISSING
    test_manifest: str | None = None
    """Evaluated with ``best.pt`` (greedy) when training ends: ``test/wer``, ``test/cer`` logged."""
    synthetic: SyntheticCorpusConfig | None = None
    batch_size: int = 16
    max_batch_seconds: float | None = None
    """Fill each batch up to this much padded audio (dynamic batch size; ``batch_size`` is then
    unused); None: ``batch_size`` utterances per batch."""
    sortagrad_epochs: int = 0
    """The first N epochs take the utterances shortest first (SortaGrad, Deep Speech 2), the
    rest shuffled."""
    num_workers: int | None = None
    """DataLoader worker processes. None: on a GPU, one per CPU core this process may use, up to 8
    (loading then overlaps the GPU's work); on a CPU, 0 (workers would compete with the model for
    the cores)."""
    validate: bool = True
    """Check every utterance before training (audio readable, not silent, durations, characters,
    long enough for its transcript), as ``asr-validate`` does."""
    on_bad_sample: BadSamplePolicy = BadSamplePolicy.error
    """error: list the bad utterances and stop; skip: leave them out and count them."""


@dataclass
class AugmentConfig:
    """On-the-fly augmentation of the training data; the defaults leave it off."""

    speed_factors: list[float] = field(default_factory=lambda: [1.0])
    """Speed perturbation: each utterance is resampled by one of these factors, drawn uniformly."""
    noise_manifest: str | None = None
    """Noise recordings (a manifest; text is ignored) added at a random SNR."""
    noise_probability: float = 0.5
    noise_snr_db: list[float] = field(default_factory=lambda: [5.0, 25.0])
    freq_masks: int = 0
    """SpecAugment: number of frequency masks per utterance, each up to ``freq_width`` mel bins."""
    freq_width: int = 15
    time_masks: int = 0
    """SpecAugment: number of time masks, each up to ``time_width`` of the utterance's frames."""
    time_width: float = 0.05
    pad_seconds: float = 0.0
    """Silence padding: 0 to this many seconds of near-silence (a noise floor 30 to 60 dB below
    the speech) before and after each utterance, so that the model does not learn how much
    silence a corpus leaves around its utterances (long recordings are cut at pauses)."""
    vtlp: float = 0.0
    """Vocal tract length perturbation: each utterance's spectrum warped along frequency by a
    factor drawn from ``[1 - vtlp, 1 + vtlp]`` (0.1 is usual; 0: off)."""


class TokenizerKind(str, Enum):
    char = "char"
    bpe = "bpe"
    unigram = "unigram"


@dataclass
class TokenizerConfig:
    type: TokenizerKind = TokenizerKind.char
    vocab_size: int = 256
    """Subword pieces (bpe, unigram): learnt by SentencePiece from the training transcripts when
    training starts, kept as ``<run dir>/tokenizer.model`` and in every checkpoint."""


@dataclass
class CTCConfig:
    backend: str = "native"
    zero_infinity: bool = True
    """An infeasible utterance (too short for its transcript) then adds no loss and no gradient."""


@dataclass
class OptimConfig:
    name: str = "adamw"
    """adamw, adam or sgd (Nesterov, momentum ``betas[0]``); the registry is in ``asr.train.builders``."""
    schedule: str = "cosine"
    """The decay after warm-up: cosine, linear or constant."""
    lr: float = 3e-3
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 300
    min_lr_ratio: float = 0.02
    decay_steps: int | None = None
    """Cosine decay reaches ``lr * min_lr_ratio`` at this step; None: at the end of the run, as
    planned by ``trainer.max_steps`` / ``max_epochs``, or ``trainer.max_time_minutes`` (the decay
    then follows the clock: progress is the larger of steps done over steps planned and time spent
    over the budget, so a slower machine still ends on a decayed rate)."""


@dataclass
class TrainerConfig:
    max_epochs: int | None = None
    """None: as many as ``max_steps`` or ``max_time_minutes`` allow; 8 if neither is set."""
    max_steps: int | None = None
    max_time_minutes: float | None = None
    """Wall-clock budget of the run (training time, summed over resumed invocations); training
    stops cleanly (evaluated, saved) when it is spent, with the learning rate decayed by then."""
    device: Device = Device.auto
    precision: Precision = Precision.auto
    """bf16 / fp16: the model's forward in autocast (CTC stays float32); fp16 adds loss scaling.
    auto: bf16 where the device computes in it natively (recent GPUs, CPUs with AVX512-BF16 or
    AMX), else fp32 (elsewhere bf16 is emulated, many times slower)."""
    accumulate_grad_batches: int = 1
    """Batches (per process) whose gradients make one optimiser step."""
    grad_clip: float = 5.0
    max_bad_steps: int = 25
    """A step whose loss or gradient is not finite is skipped and counted; this many in a row
    stop the run, naming the last batch."""
    eval_every_steps: int | None = None
    """Dev evaluation and checkpoints every N steps; None: at the end of every epoch."""
    save_every_steps: int | None = None
    """``last.pt`` also every N steps between evaluations, so a crash loses little."""
    save_every_minutes: float | None = 5.0
    """``last.pt`` also every N minutes of training (a large model's checkpoint, with its optimiser
    state, is gigabytes: by time rather than by steps)."""
    keep_best: int = 3
    """Checkpoints kept by dev WER (``best-step*.pt``; ``best.pt`` is the best of them)."""
    average_best: bool = True
    """At the end, average the kept checkpoints into ``averaged.pt`` and report its dev WER."""
    tune_blank_penalty: bool = True
    """At the end, choose greedy decoding's blank penalty for ``best.pt`` and ``averaged.pt`` on
    dev (0 to 3; ``asr.evaluate.tune_blank_penalty``); it is kept in each, and decoding uses it."""
    early_stopping_patience: int | None = None
    """Stop when dev WER has not improved for this many evaluations; None: never."""
    num_examples: int = 4
    """Decoded dev examples written to TensorBoard at each evaluation."""
    seed: int = 0
    resume: str = "auto"
    """auto: continue from ``<run dir>/checkpoints/last.pt`` if it exists; true: it must exist;
    false: start afresh (refused if the run directory already has a checkpoint)."""
    progress: bool = True


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=lambda: {"name": DEFAULT_MODEL})
    """A model's ``name`` (a registered model, ``asr/models/``) and its dims."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    ctc: CTCConfig = field(default_factory=CTCConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


POSITIVE = (
    "data.batch_size data.max_batch_seconds trainer.accumulate_grad_batches trainer.keep_best "
    "trainer.max_bad_steps trainer.max_epochs trainer.max_steps trainer.eval_every_steps "
    "trainer.save_every_steps trainer.save_every_minutes trainer.early_stopping_patience "
    "tokenizer.vocab_size trainer.max_time_minutes"
).split()


def check_config(cfg: DictConfig) -> None:
    """What the types alone do not say: the settings that must be positive (or, for
    ``sortagrad_epochs``, not negative), and ``resume``."""
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and value <= 0:
            raise UserError(f"{key}={value}: must be positive")
    if cfg.data.sortagrad_epochs < 0:
        raise UserError(f"data.sortagrad_epochs={cfg.data.sortagrad_epochs}: must be 0 or more")
    if str(cfg.trainer.resume).lower() not in ("auto", "true", "false"):
        raise UserError(f"trainer.resume={cfg.trainer.resume}: expected auto, true or false")


def register_schema() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
