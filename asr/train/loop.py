"""The training loop, readable top to bottom: data, model, optimiser, then one explicit loop.

The same code runs as one process or as one of many under ``torchrun`` (``asr.train.distributed``):
every rank takes its share of each step's batches, gradients are averaged by DDP, and rank 0
alone evaluates, writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from asr.augment import SpecAugment, WaveformAugment
from asr.ctc import get_backend
from asr.ctc.decoding import GreedyDecoder
from asr.data.dataset import Batch, SpeechDataset, collate
from asr.data.manifest import Utterance, read_manifest
from asr.data.sampler import BucketBatchSampler
from asr.data.synthetic import CorpusSpec, generate_corpus
from asr.data.validate import find_problems, screen
from asr.errors import UserError
from asr.evaluate import error_rates, transcribe_dataset
from asr.fileio import atomic_path
from asr.models import DeepSpeech2, ModelDims
from asr.runtime import Precision, autocast, native_bf16, resolve_precision
from asr.text import CharTokenizer, SentencePieceTokenizer, Tokenizer, normalize_text
from asr.train import distributed
from asr.train.checkpoint import average_checkpoints, load_checkpoint, model_payload, save_checkpoint
from asr.train.config import TokenizerKind
from asr.train.distributed import World
from asr.train.metrics import MetricsLogger

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """Progress, kept apart from the config and saved with every checkpoint."""

    step: int = 0
    best_wer: float = math.inf
    evals_since_best: int = 0
    kept: list[dict] = dataclasses.field(default_factory=list)
    """The best checkpoints kept, best first: ``{"step", "wer", "file"}``."""
    skipped_steps: int = 0
    """Steps skipped for a non-finite loss or gradient."""
    early_stopped: bool = False
    elapsed: float = 0.0
    """Seconds of training (steps and evaluations) over every invocation of this run."""


@dataclasses.dataclass
class Schedule:
    """Learning-rate factor of a step: linear warm-up over ``warmup_steps``, then cosine decay to
    ``min_ratio`` as training progresses, the progress being the larger of the steps done over
    ``total_steps`` and the time spent (``elapsed``, kept up to date by the loop) over ``budget``
    seconds. Either horizon may be infinite."""

    warmup_steps: int
    total_steps: float
    budget: float
    min_ratio: float
    elapsed: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        by_steps = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(by_steps, self.elapsed / self.budget))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def prepare_data(cfg: DictConfig) -> None:
    """Synthesise the built-in corpus if the config asks for it and it is not there yet."""
    synthetic = cfg.data.synthetic
    if synthetic is not None:
        spec = CorpusSpec(**{f.name: synthetic[f.name] for f in dataclasses.fields(CorpusSpec)})
        generate_corpus(Path(synthetic.root), spec)


def build_tokenizer(cfg: DictConfig, run_dir: Path, world: World) -> Tokenizer:
    """Characters, or SentencePiece pieces learnt from the training transcripts by rank 0 (once:
    ``<run dir>/tokenizer.model`` is reused when the run resumes)."""
    kind = cfg.tokenizer.type
    if kind == TokenizerKind.char:
        return CharTokenizer()
    path = run_dir / "tokenizer.model"
    if world.is_main and not path.is_file():
        texts = [normalize_text(utt.text) for utt in read_manifest(cfg.data.train_manifest)]
        model = SentencePieceTokenizer.train(texts, cfg.tokenizer.vocab_size, kind.value).model
        with atomic_path(path) as temp:
            temp.write_bytes(model)
        log.info(
            "learnt %d %s pieces from %d transcripts -> %s",
            cfg.tokenizer.vocab_size,
            kind.value,
            len(texts),
            path,
        )
    distributed.broadcast(None)  # the others wait for the file
    return SentencePieceTokenizer(path.read_bytes())


def checked_utterances(cfg: DictConfig, model: DeepSpeech2, tokenizer: Tokenizer, world: World):
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


def waveform_augment(cfg: DictConfig, sample_rate: int) -> WaveformAugment:
    aug = cfg.augment
    noises: list[Utterance] = [] if aug.noise_manifest is None else read_manifest(aug.noise_manifest)
    if any(factor <= 0 for factor in aug.speed_factors) or len(aug.noise_snr_db) != 2:
        raise UserError("augment.speed_factors must be positive and augment.noise_snr_db a [low, high] pair")
    return WaveformAugment(
        sample_rate, list(aug.speed_factors), noises, aug.noise_probability, tuple(aug.noise_snr_db)
    )


class TrainingForward(nn.Module):
    """What DDP wraps: the model's forward with vocal tract length perturbation (``vtlp``: warp
    factors drawn from ``[1 - vtlp, 1 + vtlp]``) in its frontend and SpecAugment between its
    frontend and network, both in training mode only."""

    def __init__(self, model: DeepSpeech2, spec_augment: SpecAugment, vtlp: float = 0.0) -> None:
        super().__init__()
        self.model, self.spec_augment, self.vtlp = model, spec_augment, vtlp

    def forward(self, waveforms: torch.Tensor, sample_lengths: torch.Tensor):
        warp = None
        if self.training and self.vtlp > 0:
            warp = 1 + self.vtlp * (2 * torch.rand(len(waveforms), device=waveforms.device) - 1)
        features, lengths = self.model.frontend(waveforms, sample_lengths, warp)
        return self.model.classify(self.spec_augment(features, lengths), lengths)


def rng_state(device: torch.device) -> dict:
    """Every random generator of this process, in types ``torch.load(weights_only=True)`` reads."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "rest": list(numpy_state[2:])},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(
        ("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), *state["numpy"]["rest"])
    )
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclasses.dataclass
class Trainer:
    """The pieces of one training run and what is done with them: a step, an evaluation on the
    dev set, a checkpoint, a restore."""

    cfg: DictConfig
    run_dir: Path
    world: World
    device: torch.device
    tokenizer: Tokenizer
    model: DeepSpeech2
    forward: nn.Module
    """``TrainingForward``, wrapped in DDP when there are several ranks."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: BucketBatchSampler
    dev_set: SpeechDataset
    logger: MetricsLogger | None
    """Rank 0's; None on the other ranks."""
    state: TrainState = dataclasses.field(default_factory=TrainState)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def train_step(self, batches: list[Batch]) -> tuple[float, int, float]:
        """One optimiser step over this rank's ``batches``; returns this rank's summed loss, the
        step's utterance count over all ranks, and the gradient norm before clipping (not finite:
        the step was skipped).

        Each utterance's loss is divided by its transcript length (as torch's ``mean``) and by the
        number of utterances in the step over all ranks, so one step is the same sum of gradients
        however the batches are spread over ranks and accumulation.
        """
        loss_fn = get_backend(self.cfg.ctc.backend)
        local_count = sum(len(batch.target_lengths) for batch in batches)
        (count,) = distributed.all_sum([local_count], self.device)
        loss_sum = 0.0
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            no_sync = self.forward.no_sync if self.world.distributed and not last else contextlib.nullcontext
            with no_sync():
                with autocast(self.device, self.cfg.trainer.precision):
                    log_probs, lengths = self.forward(batch.waveforms, batch.sample_lengths)
                losses = loss_fn(
                    log_probs.float().transpose(0, 1), batch.targets, lengths, batch.target_lengths,
                    blank=self.tokenizer.blank, reduction="none", zero_infinity=self.cfg.ctc.zero_infinity,
                )  # fmt: skip
                loss = (losses / batch.target_lengths.clamp(min=1)).sum()
                self.scaler.scale(loss * (self.world.size / count)).backward()
            loss_sum += loss.item()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip).item()
        if math.isfinite(grad_norm):  # the same on every rank: gradients are averaged by now
            self.scaler.step(self.optimizer)
            self.scheduler.step()
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, int(count), grad_norm

    def evaluate(self) -> None:
        """Rank 0: dev WER / CER to the logs, examples and a spectrogram to TensorBoard, the best
        checkpoints kept, early stopping decided; then every rank saves (``save``)."""
        if self.world.is_main:
            step, dev = self.state.step, self.dev_set
            hypotheses = transcribe_dataset(self.model, dev, GreedyDecoder(self.tokenizer), self.device)
            rates = error_rates(dev.texts, hypotheses)
            self.logger.scalars(step, {"dev/wer": rates["wer"], "dev/cer": rates["cer"]})
            for i in range(min(self.cfg.trainer.num_examples, len(dev))):
                self.logger.text(step, f"dev/example_{i}", f"ref: {dev.texts[i]}  \nhyp: {hypotheses[i]}")
            waveform = dev[0][0].to(self.device)
            with torch.no_grad():
                features, _ = self.model.frontend(
                    waveform[None], torch.tensor([len(waveform)], device=self.device)
                )
            self.logger.spectrogram(step, "dev/log_mel", features[0].cpu())
            improved = rates["wer"] < self.state.best_wer
            self.state.best_wer = min(self.state.best_wer, rates["wer"])
            self.state.evals_since_best = 0 if improved else self.state.evals_since_best + 1
            patience = self.cfg.trainer.early_stopping_patience
            self.state.early_stopped = patience is not None and self.state.evals_since_best >= patience
            log.info("step %d: dev WER %.2f%% CER %.2f%%%s", step, 100 * rates["wer"], 100 * rates["cer"],
                     " (best)" if improved else "")  # fmt: skip
        self.save(wer=rates["wer"] if self.world.is_main else None)
        self.state = distributed.broadcast(self.state)

    def save(self, wer: float | None = None) -> None:
        """``last.pt``: everything needed to continue (every rank's RNG included: a collective).
        With a dev ``wer``, also ``best-step*.pt`` among the ``keep_best`` and ``best.pt``."""
        rng = distributed.gather(rng_state(self.device))
        if not self.world.is_main:
            return
        kept, evicted = self.state.kept, []
        if wer is not None:
            entry = {"step": self.state.step, "wer": wer, "file": f"best-step{self.state.step:07d}.pt"}
            ranked = sorted([*kept, entry], key=lambda k: (k["wer"], k["step"]))
            kept, evicted = ranked[: self.cfg.trainer.keep_best], ranked[self.cfg.trainer.keep_best :]
            if entry in kept:
                weights = {**model_payload(self.model, self.tokenizer), "config": self.config_dict()}
                save_checkpoint(self.checkpoint_dir / entry["file"], weights)
                if kept[0] is entry:
                    save_checkpoint(self.checkpoint_dir / "best.pt", weights)
        self.state.kept = kept
        payload = {
            **model_payload(self.model, self.tokenizer),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "train_state": dataclasses.asdict(self.state),
            "rng": rng,
            "config": self.config_dict(),
        }
        save_checkpoint(self.checkpoint_dir / "last.pt", payload)
        for entry in evicted:  # only now that last.pt no longer lists them
            (self.checkpoint_dir / entry["file"]).unlink(missing_ok=True)

    def config_dict(self) -> dict:
        return OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)

    def restore(self, path: Path) -> None:
        checkpoint = load_checkpoint(path)
        if checkpoint.get("model_dims") != dataclasses.asdict(self.model.dims):
            raise UserError(
                f"{path} holds a model with other settings than this config's model; "
                "continue it with its own config, or start in another hydra.run.dir"
            )
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.sampler.load_state_dict(checkpoint["sampler"])
        self.state = TrainState(**checkpoint["train_state"])
        if len(checkpoint["rng"]) == self.world.size:
            set_rng_state(checkpoint["rng"][self.world.rank], self.device)
        else:
            log.warning("%s was written by %d processes, not %d: random state not restored",
                        path, len(checkpoint["rng"]), self.world.size)  # fmt: skip

    def average(self) -> None:
        """Rank 0: ``averaged.pt`` from the kept best checkpoints, and its dev WER."""
        files = [self.checkpoint_dir / entry["file"] for entry in self.state.kept]
        if not self.world.is_main or len(files) < 2:
            return
        payload = average_checkpoints(files)
        model = DeepSpeech2(self.model.dims).to(self.device)
        model.load_state_dict(payload["model"])
        hypotheses = transcribe_dataset(model, self.dev_set, GreedyDecoder(self.tokenizer), self.device)
        wer = error_rates(self.dev_set.texts, hypotheses)["wer"]
        save_checkpoint(self.checkpoint_dir / "averaged.pt", {**payload, "dev_wer": wer})
        self.logger.scalars(self.state.step, {"dev/wer_averaged": wer})
        log.info("averaged.pt (%d checkpoints): dev WER %.2f%% (best single %.2f%%)",
                 len(files), 100 * wer, 100 * self.state.best_wer)  # fmt: skip


def data_workers(setting: int | None, device: torch.device) -> int:
    """``data.num_workers``: as set, else one per usable core up to 8 on a GPU, none on a CPU."""
    if setting is not None:
        return setting
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores - 1))


def resume_from(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, following ``trainer.resume`` (auto / true / false)."""
    last = run_dir / "checkpoints" / "last.pt"
    mode = str(cfg.trainer.resume).lower()
    if mode not in ("auto", "true", "false"):
        raise UserError(f"trainer.resume={cfg.trainer.resume}: expected auto, true or false")
    if mode == "false" and last.is_file():
        raise UserError(
            f"{last} exists; continue it with trainer.resume=auto or choose another hydra.run.dir"
        )
    if mode == "true" and not last.is_file():
        raise UserError(f"trainer.resume=true but {last} does not exist; start with trainer.resume=auto")
    return last if mode != "false" and last.is_file() else None


POSITIVE_KEYS = (
    "data.batch_size data.max_batch_seconds trainer.accumulate_grad_batches trainer.keep_best "
    "trainer.max_bad_steps trainer.max_epochs trainer.max_steps trainer.eval_every_steps "
    "trainer.save_every_steps trainer.save_every_minutes trainer.early_stopping_patience "
    "tokenizer.vocab_size trainer.max_time_minutes"
).split()


def check_config(cfg: DictConfig) -> None:
    for key in POSITIVE_KEYS:
        value = OmegaConf.select(cfg, key)
        if value is not None and value <= 0:
            raise UserError(f"{key}={value}: must be positive")


def run(cfg: DictConfig, run_dir: Path) -> TrainState:
    """Train with ``cfg`` (a ``TrainConfig``), writing checkpoints, logs and metrics to ``run_dir``."""
    check_config(cfg)
    world, device = distributed.init(cfg.trainer.device)
    try:
        return _run(cfg, Path(distributed.broadcast(str(run_dir))), world, device)
    finally:
        distributed.shutdown()


def _run(cfg: DictConfig, run_dir: Path, world: World, device: torch.device) -> TrainState:
    torch.manual_seed(cfg.trainer.seed)
    get_backend(cfg.ctc.backend)  # an unknown backend fails now, not after the data is ready
    resume = resume_from(cfg, run_dir)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        prepare_data(cfg)
    distributed.broadcast(None)  # the others wait for the corpus

    # Data and model.
    tokenizer = build_tokenizer(cfg, run_dir, world)
    dims = ModelDims(**{**OmegaConf.to_container(cfg.model), "vocab_size": len(tokenizer)})
    model = DeepSpeech2(dims).to(device)
    torch.manual_seed(cfg.trainer.seed + world.rank)  # masks and dropout differ between ranks
    train_utts, dev_utts = checked_utterances(cfg, model, tokenizer, world)
    train_set = SpeechDataset(
        train_utts, tokenizer, dims.sample_rate, waveform_augment(cfg, dims.sample_rate), cfg.trainer.seed
    )
    dev_set = SpeechDataset(dev_utts, tokenizer, dims.sample_rate)
    accumulate = cfg.trainer.accumulate_grad_batches
    sampler = BucketBatchSampler(
        train_set.durations, batch_size=cfg.data.batch_size, max_batch_seconds=cfg.data.max_batch_seconds,
        seed=cfg.trainer.seed, num_replicas=world.size, rank=world.rank, accumulate=accumulate,
    )  # fmt: skip
    aug = cfg.augment
    forward = TrainingForward(
        model, SpecAugment(aug.freq_masks, aug.freq_width, aug.time_masks, aug.time_width), aug.vtlp
    )
    if world.distributed:
        forward = DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None)

    # Optimiser and schedule: the plan is max_epochs (epoch 0's step count each), max_steps and
    # the time budget, whichever ends first; without any of them, 8 epochs.
    steps_per_epoch = len(sampler.rank_batches(0)) // accumulate
    if steps_per_epoch == 0:
        raise UserError(
            f"{cfg.data.train_manifest}: too few utterances for one step of {world.size} process(es)"
        )
    limits = cfg.trainer
    max_epochs = limits.max_epochs
    if max_epochs is None:
        max_epochs = 8 if limits.max_steps is None and limits.max_time_minutes is None else math.inf
    max_steps = math.inf if limits.max_steps is None else limits.max_steps
    budget = math.inf if limits.max_time_minutes is None else 60 * limits.max_time_minutes
    total_steps = min(max_epochs * steps_per_epoch, max_steps)
    decay = cfg.optim.decay_steps  # a decay fixed in steps ignores the clock
    schedule = Schedule(cfg.optim.warmup_steps, decay or total_steps, math.inf if decay else budget,
                        cfg.optim.min_lr_ratio)  # fmt: skip
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
    )
    # A lambda, not the Schedule itself, which LambdaLR would save and restore over the config.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
    precision = resolve_precision(device, cfg.trainer.precision)
    if precision is Precision.bf16 and not native_bf16(device):
        log.warning("trainer.precision=bf16: %s emulates bf16, which is many times slower than fp32", device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision is Precision.fp16)
    trainer = Trainer(
        cfg, run_dir, world, device, tokenizer, model, forward, optimizer, scheduler, scaler, sampler,
        dev_set, None,
    )  # fmt: skip
    if resume is not None:
        trainer.restore(resume)
        log.info("resuming from %s at step %d", resume, trainer.state.step)
    if world.is_main:
        for stale in trainer.checkpoint_dir.glob(".*.pt"):  # temporary files of a killed save
            stale.unlink()
        trainer.logger = MetricsLogger(run_dir, resume_step=None if resume is None else trainer.state.step)
        if resume is None:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    state = trainer.state
    log.info(
        "training on %d utterances (%.1f h), dev %d; %.2fM parameters on %s x %d; ~%d steps/epoch",
        len(train_set), sum(train_set.durations) / 3600, len(dev_set),
        sum(p.numel() for p in model.parameters()) / 1e6, device, world.size, steps_per_epoch,
    )  # fmt: skip

    # The loop: stop at max_epochs / max_steps, when the wall-clock budget is spent (decided by
    # all ranks together) or by early stopping; evaluate and save at the end of every epoch (or
    # every eval_every_steps) and when stopping, save last.pt every save_every_steps.
    started, first_step, spent_before = time.monotonic(), state.step, state.elapsed
    schedule.elapsed = state.elapsed
    every_steps, every_minutes = cfg.trainer.save_every_steps, cfg.trainer.save_every_minutes or math.inf
    save_due = state.elapsed + 60 * every_minutes
    workers = data_workers(cfg.data.num_workers, device)
    bar = tqdm(
        total=total_steps if math.isfinite(total_steps) else None,
        initial=state.step,
        unit="step",
        disable=not (cfg.trainer.progress and world.is_main),
    )
    forward.train()
    bad_in_a_row = 0
    stop = state.early_stopped or state.step >= max_steps or sampler.epoch >= max_epochs
    stop |= state.elapsed >= budget
    while not stop:
        train_set.set_epoch(sampler.epoch)
        epoch_batches, first = sampler.rank_batches(sampler.epoch), sampler.position
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
            generator=torch.Generator().manual_seed(cfg.trainer.seed),  # leaves the global RNG to the model
        )  # fmt: skip
        group: list[Batch] = []
        for number, batch in enumerate(loader, first + 1):
            group.append(batch.to(device))
            if len(group) < accumulate:
                continue
            loss_sum, count, grad_norm = trainer.train_step(group)
            group = []
            epoch_done = sampler.advance(accumulate)
            state.step += 1
            loss_sum, elapsed = distributed.all_sum(
                [loss_sum, spent_before + time.monotonic() - started], device
            )  # the ranks' mean time, so that they agree on the schedule and on when to stop
            state.elapsed = schedule.elapsed = elapsed / world.size
            loss = loss_sum / count
            if math.isfinite(grad_norm):
                bad_in_a_row = 0
                lr = scheduler.get_last_lr()[0]
                if world.is_main:
                    trainer.logger.scalars(
                        state.step, {"train/loss": loss, "train/lr": lr, "train/grad_norm": grad_norm}
                    )
                bar.set_postfix(epoch=sampler.epoch, loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            else:
                bad_in_a_row += 1
                state.skipped_steps += 1
                if world.is_main:
                    trainer.logger.scalars(state.step, {"train/skipped_steps": state.skipped_steps})
                if bad_in_a_row >= cfg.trainer.max_bad_steps:
                    batches = epoch_batches[number - accumulate : number]
                    sources = ", ".join(
                        train_set.utterances[i].source for indices in batches for i in indices
                    )
                    raise UserError(
                        f"{bad_in_a_row} steps in a row had a non-finite loss or gradient (step "
                        f"{state.step}, loss {loss}); the last batch: {sources}. Check the data with "
                        "asr-validate, lower optim.lr, or use trainer.precision=fp32"
                    )
            bar.update()
            stop = state.step >= max_steps or state.elapsed >= budget
            stop |= epoch_done and sampler.epoch >= max_epochs
            every = cfg.trainer.eval_every_steps
            if stop or (epoch_done if every is None else state.step % every == 0):
                trainer.evaluate()
                stop |= trainer.state.early_stopped
                state = trainer.state
                save_due = state.elapsed + 60 * every_minutes
            elif (every_steps and state.step % every_steps == 0) or state.elapsed >= save_due:
                trainer.save()
                save_due = state.elapsed + 60 * every_minutes
            if stop or epoch_done:
                break
    bar.close()
    if state.early_stopped:
        log.info("early stopping: dev WER has not improved for %d evaluations", state.evals_since_best)
    if state.step > first_step:  # a rerun of a finished run changes nothing
        trainer.average()
    if world.is_main:
        trainer.logger.close()
    distributed.broadcast(None)  # no rank tears the group down while another still works in it
    log.info(
        "stopped at step %d (epoch %d); best dev WER %.2f%%", state.step, sampler.epoch, 100 * state.best_wer
    )
    return state
