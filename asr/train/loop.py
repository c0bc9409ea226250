"""The training loop, readable top to bottom: data, model, optimiser, then one explicit loop."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from asr.ctc import get_backend
from asr.data.dataset import Batch, SpeechDataset, collate
from asr.data.manifest import read_manifest
from asr.data.sampler import SortedShuffleBatchSampler
from asr.data.synthetic import CorpusSpec, generate_corpus
from asr.errors import UserError
from asr.evaluate import error_rates, transcribe_dataset
from asr.models import DeepSpeech2, ModelDims
from asr.runtime import autocast, resolve_device
from asr.text import CharTokenizer
from asr.train.checkpoint import load_checkpoint, model_payload, save_checkpoint
from asr.train.metrics import MetricsLogger

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """Progress, kept apart from the config and saved with every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_wer: float = math.inf


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def prepare_data(cfg: DictConfig) -> None:
    """Synthesise the built-in corpus if the config asks for it and it is not there yet."""
    synthetic = cfg.data.synthetic
    if synthetic is not None:
        spec = CorpusSpec(**{f.name: synthetic[f.name] for f in dataclasses.fields(CorpusSpec)})
        generate_corpus(Path(synthetic.root), spec)


@dataclasses.dataclass
class Trainer:
    """The pieces of one training run and the three things done with them: a step, an evaluation
    on the dev set, and a checkpoint."""

    cfg: DictConfig
    run_dir: Path
    device: torch.device
    tokenizer: CharTokenizer
    model: DeepSpeech2
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dev_set: SpeechDataset
    logger: MetricsLogger
    state: TrainState = dataclasses.field(default_factory=TrainState)

    def train_step(self, batch: Batch) -> tuple[float, float]:
        """One optimiser step; returns the loss and the gradient norm before clipping."""
        loss_fn = get_backend(self.cfg.ctc.backend)
        with autocast(self.device, self.cfg.trainer.precision):
            log_probs, lengths = self.model(batch.waveforms, batch.sample_lengths)
        loss = loss_fn(
            log_probs.float().transpose(0, 1), batch.targets, lengths, batch.target_lengths,
            blank=self.tokenizer.blank, reduction="mean", zero_infinity=self.cfg.ctc.zero_infinity,
        )  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item(), grad_norm.item()

    def evaluate(self) -> None:
        """Dev WER / CER to the logs, decoded examples and a spectrogram to TensorBoard, then save."""
        step, dev = self.state.step, self.dev_set
        hypotheses = transcribe_dataset(self.model, dev, self.tokenizer, self.device)
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
        is_best = rates["wer"] < self.state.best_wer
        self.state.best_wer = min(self.state.best_wer, rates["wer"])
        self.save(is_best)
        log.info("step %d: dev WER %.2f%% CER %.2f%%%s", step, 100 * rates["wer"], 100 * rates["cer"],
                 " (best)" if is_best else "")  # fmt: skip

    def save(self, is_best: bool) -> None:
        """``last.pt`` (and ``best.pt``): the model and everything needed to continue training."""
        payload = {
            **model_payload(self.model, self.tokenizer),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_state": dataclasses.asdict(self.state),
            "rng": {"torch": torch.get_rng_state()},
            "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True),
        }
        save_checkpoint(self.run_dir / "checkpoints" / "last.pt", payload)
        if is_best:
            save_checkpoint(self.run_dir / "checkpoints" / "best.pt", payload)

    def restore(self) -> None:
        path = self.run_dir / "checkpoints" / "last.pt"
        if not path.is_file():
            raise UserError(f"trainer.resume=true but {path} does not exist; start without resume")
        checkpoint = load_checkpoint(path)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.state = TrainState(**checkpoint["train_state"])


def run(cfg: DictConfig, run_dir: Path) -> TrainState:
    """Train with ``cfg`` (a ``TrainConfig``), writing checkpoints, logs and metrics to ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.trainer.seed)
    device = resolve_device(cfg.trainer.device)
    get_backend(cfg.ctc.backend)  # an unknown backend fails now, not after the data is ready
    prepare_data(cfg)

    # Data and model.
    tokenizer = CharTokenizer()
    dims = ModelDims(**{**OmegaConf.to_container(cfg.model), "vocab_size": len(tokenizer)})
    train_set = SpeechDataset(read_manifest(cfg.data.train_manifest), tokenizer, dims.sample_rate)
    dev_set = SpeechDataset(read_manifest(cfg.data.dev_manifest), tokenizer, dims.sample_rate)
    sampler = SortedShuffleBatchSampler(train_set.durations, cfg.data.batch_size, cfg.trainer.seed)
    model = DeepSpeech2(dims).to(device)

    # Optimiser and schedule: the plan is max_epochs, or max_steps if that comes first.
    steps_per_epoch = len(sampler)
    total_steps = cfg.trainer.max_epochs * steps_per_epoch
    if cfg.trainer.max_steps is not None:
        total_steps = min(total_steps, cfg.trainer.max_steps)
    decay_steps = cfg.optim.decay_steps or total_steps
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_cosine(step, cfg.optim.warmup_steps, decay_steps, cfg.optim.min_lr_ratio),
    )
    trainer = Trainer(
        cfg, run_dir, device, tokenizer, model, optimizer, scheduler, dev_set, MetricsLogger(run_dir)
    )
    if cfg.trainer.resume:
        trainer.restore()
    else:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    state = trainer.state
    log.info(
        "training on %d utterances (%.1f h), dev %d; %.2fM parameters on %s; %d steps/epoch",
        len(train_set), sum(train_set.durations) / 3600, len(dev_set),
        sum(p.numel() for p in model.parameters()) / 1e6, device, steps_per_epoch,
    )  # fmt: skip

    # The loop: stop at the planned step or when the wall-clock budget is spent; evaluate and
    # save at the end of every epoch (or every eval_every_steps) and when stopping.
    started = time.monotonic()
    budget = math.inf if cfg.trainer.max_time_minutes is None else 60 * cfg.trainer.max_time_minutes
    bar = tqdm(total=total_steps, initial=state.step, unit="step", disable=not cfg.trainer.progress)
    model.train()
    stop = state.step >= total_steps
    while not stop and state.epoch < cfg.trainer.max_epochs:
        sampler.set_position(state.epoch, state.batch_in_epoch)
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.data.num_workers,
            generator=torch.Generator().manual_seed(cfg.trainer.seed),  # leaves the global RNG to the model
        )  # fmt: skip
        for batch in loader:
            loss, grad_norm = trainer.train_step(batch.to(device))
            state.step += 1
            state.batch_in_epoch += 1
            lr = scheduler.get_last_lr()[0]
            trainer.logger.scalars(
                state.step, {"train/loss": loss, "train/lr": lr, "train/grad_norm": grad_norm}
            )
            bar.update()
            bar.set_postfix(epoch=state.epoch, loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            stop = state.step >= total_steps or time.monotonic() - started >= budget
            epoch_done = state.batch_in_epoch == steps_per_epoch
            if epoch_done:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            every = cfg.trainer.eval_every_steps
            if stop or (epoch_done if every is None else state.step % every == 0):
                trainer.evaluate()
            if stop:
                break
    bar.close()
    trainer.logger.close()
    log.info(
        "stopped at step %d (epoch %d); best dev WER %.2f%%", state.step, state.epoch, 100 * state.best_wer
    )
    return state
