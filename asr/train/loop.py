"""The training run, readable top to bottom: data, model, optimiser, then one explicit loop.

The same code runs as one process or as one of many under ``torchrun`` (``asr.train.distributed``):
every rank takes its share of each step's batches, gradients are averaged by DDP, and rank 0
alone evaluates, writes checkpoints and logs. The pieces are built in ``builders``, what is done
with them is ``Trainer``'s, what is kept on disk ``Checkpointer``'s.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from asr.configs import model_from_settings
from asr.ctc import get_backend
from asr.data.dataset import Batch, SpeechDataset, collate
from asr.data.prepare import synthesise_if_missing
from asr.data.sampler import BucketBatchSampler
from asr.errors import UserError
from asr.runtime import Precision, native_bf16, resolve_precision
from asr.train import distributed
from asr.train.builders import (
    Plan,
    TrainingForward,
    build_optimizer,
    build_tokenizer,
    checked_utterances,
    data_workers,
    waveform_augment,
)
from asr.train.checkpointer import Checkpointer, TrainState, resume_from
from asr.train.config import check_config
from asr.train.distributed import World
from asr.train.metrics import MetricsLogger
from asr.train.trainer import Trainer

log = logging.getLogger(__name__)


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
    resume = resume_from(str(cfg.trainer.resume).lower(), run_dir)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.data.synthetic is not None:
            synthesise_if_missing(cfg.data.synthetic)
    distributed.broadcast(None)  # the others wait for the corpus

    # Data and model.
    tokenizer = build_tokenizer(cfg, run_dir, world)
    model = model_from_settings(OmegaConf.to_container(cfg.model), len(tokenizer)).to(device)
    rate = model.dims.sample_rate
    torch.manual_seed(cfg.trainer.seed + world.rank)  # masks and dropout differ between ranks
    train_utts, dev_utts = checked_utterances(cfg, model, tokenizer, world)
    train_set = SpeechDataset(
        train_utts, tokenizer, rate, waveform_augment(cfg.augment, rate), cfg.trainer.seed
    )
    dev_set = SpeechDataset(dev_utts, tokenizer, rate)
    accumulate = cfg.trainer.accumulate_grad_batches
    sampler = BucketBatchSampler(
        train_set.durations, batch_size=cfg.data.batch_size, max_batch_seconds=cfg.data.max_batch_seconds,
        seed=cfg.trainer.seed, num_replicas=world.size, rank=world.rank, accumulate=accumulate,
        sorted_epochs=cfg.data.sortagrad_epochs,
    )  # fmt: skip
    forward = TrainingForward.from_config(model, cfg.augment)
    if world.distributed:
        forward = DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None)

    # Optimiser, schedule, precision.
    steps_per_epoch = len(sampler.rank_batches(0)) // accumulate
    if steps_per_epoch == 0:
        raise UserError(
            f"{cfg.data.train_manifest}: too few utterances for one step of {world.size} process(es)"
        )
    plan = Plan.from_config(cfg.trainer, steps_per_epoch)
    optimizer, scheduler, schedule = build_optimizer(cfg.optim, model, plan)
    precision = resolve_precision(device, cfg.trainer.precision)
    if precision is Precision.bf16 and not native_bf16(device):
        log.warning("trainer.precision=bf16: %s emulates bf16, which is many times slower than fp32", device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision is Precision.fp16)
    checkpointer = Checkpointer(run_dir / "checkpoints", cfg.trainer.keep_best, world, device)
    trainer = Trainer(
        cfg,
        world,
        device,
        tokenizer,
        model,
        forward,
        optimizer,
        scheduler,
        scaler,
        sampler,
        dev_set,
        checkpointer,
    )
    if resume is not None:
        trainer.restore(resume)
        log.info("resuming from %s at step %d", resume, trainer.state.step)
    if world.is_main:
        checkpointer.remove_stale()
        trainer.logger = MetricsLogger(run_dir, resume_step=None if resume is None else trainer.state.step)
        if resume is None:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    log.info(
        "training on %d utterances (%.1f h), dev %d; %.2fM parameters on %s x %d; ~%d steps/epoch",
        len(train_set), sum(train_set.durations) / 3600, len(dev_set),
        sum(p.numel() for p in model.parameters()) / 1e6, device, world.size, steps_per_epoch,
    )  # fmt: skip
    first_step = trainer.state.step
    train(cfg, trainer, train_set, plan, schedule)
    state = trainer.state
    if state.early_stopped:
        log.info("early stopping: dev WER has not improved for %d evaluations", state.evals_since_best)
    if state.step > first_step:  # a rerun of a finished run changes nothing
        trainer.finish()
    if world.is_main:
        trainer.logger.close()
    distributed.broadcast(None)  # no rank tears the group down while another still works in it
    log.info(
        "stopped at step %d (epoch %d); best dev WER %.2f%%", state.step, sampler.epoch, 100 * state.best_wer
    )
    return state


def train(cfg: DictConfig, trainer: Trainer, train_set: SpeechDataset, plan: Plan, schedule) -> None:
    """The loop: stop at ``plan``'s epochs or steps, when its time budget is spent (decided by all
    ranks together) or by early stopping; evaluate and save at the end of every epoch (or every
    ``eval_every_steps``) and when stopping; save ``last.pt`` every ``save_every_steps`` or
    ``save_every_minutes`` between evaluations."""
    world, device, sampler, state = trainer.world, trainer.device, trainer.sampler, trainer.state
    accumulate = cfg.trainer.accumulate_grad_batches
    started, spent_before, first_step = time.monotonic(), state.elapsed, state.step
    schedule.elapsed = state.elapsed
    every_steps, every_minutes = cfg.trainer.save_every_steps, cfg.trainer.save_every_minutes or math.inf
    save_due = state.elapsed + 60 * every_minutes
    workers = data_workers(cfg.data.num_workers, device)
    bar = tqdm(
        total=plan.total_steps if math.isfinite(plan.total_steps) else None, initial=state.step, unit="step",
        disable=not (cfg.trainer.progress and world.is_main),
    )  # fmt: skip
    trainer.forward.train()
    bad_in_a_row = 0
    rate = trainer.model.dims.sample_rate
    audio_seconds, paused = 0.0, 0.0  # this rank's audio trained on; time spent evaluating and saving
    stop = state.early_stopped or state.step >= plan.max_steps or sampler.epoch >= plan.max_epochs
    stop |= state.elapsed >= plan.budget
    while not stop:
        train_set.set_epoch(sampler.epoch)
        epoch_batches, first = sampler.rank_batches(sampler.epoch), sampler.position
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
            generator=torch.Generator().manual_seed(cfg.trainer.seed),  # leaves the global RNG to the model
        )  # fmt: skip
        group: list[Batch] = []
        for number, batch in enumerate(loader, first + 1):
            audio_seconds += batch.sample_lengths.sum().item() / rate
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
                lr = trainer.scheduler.get_last_lr()[0]
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
            stop = state.step >= plan.max_steps or state.elapsed >= plan.budget
            stop |= epoch_done and sampler.epoch >= plan.max_epochs
            every = cfg.trainer.eval_every_steps
            evaluate = stop or (epoch_done if every is None else state.step % every == 0)
            if evaluate or (every_steps and state.step % every_steps == 0) or state.elapsed >= save_due:
                pause_start = time.monotonic()
                if evaluate:
                    trainer.evaluate()
                    state = trainer.state
                    stop |= state.early_stopped
                else:
                    trainer.save()
                save_due = state.elapsed + 60 * every_minutes
                paused += time.monotonic() - pause_start
            if stop or epoch_done:
                break
    bar.close()
    (audio_seconds,) = distributed.all_sum([audio_seconds], device)
    log_throughput(trainer, state.step - first_step, audio_seconds, time.monotonic() - started - paused)


def log_throughput(trainer: Trainer, steps: int, audio_seconds: float, seconds: float) -> None:
    """Training speed of this run (evaluation and saving left out), to the log and metrics.jsonl:
    steps and seconds of audio (all ranks) per second, and the peak GPU memory of rank 0."""
    if steps == 0 or seconds <= 0:
        return
    speed = {
        "train/steps_per_second": steps / seconds,
        "train/audio_seconds_per_second": audio_seconds / seconds,
    }
    peak = ""
    if trainer.device.type == "cuda":
        speed["train/gpu_peak_gib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**30
        peak = f"; peak GPU memory {speed['train/gpu_peak_gib']:.2f} GiB"
    log.info(
        "%d steps in %.0f s of training: %.2f steps/s, %.0f s of audio per second%s",
        steps, seconds, speed["train/steps_per_second"], speed["train/audio_seconds_per_second"], peak,
    )  # fmt: skip
    if trainer.world.is_main:
        trainer.logger.scalars(trainer.state.step, speed)
