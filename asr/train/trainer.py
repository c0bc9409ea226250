"""What is done with a run's pieces: an optimiser step, a dev evaluation (keeping the best
checkpoints), a save, a restore, the final average and test."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from asr import speakers
from asr.checkpoint import average_checkpoints, load_checkpoint, load_model, model_payload, save_checkpoint
from asr.ctc import get_backend
from asr.ctc.decoding import GreedyDecoder
from asr.data.dataset import Batch, SpeechDataset
from asr.data.manifest import read_manifest
from asr.evaluate import error_rates, transcribe_dataset, tune_blank_penalty
from asr.models import CTCModel, build_model
from asr.recognizer import Recognizer
from asr.runtime import autocast
from asr.text import Tokenizer
from asr.train import distributed
from asr.train.checkpointer import Checkpointer, TrainState
from asr.train.distributed import World
from asr.train.metrics import MetricsLogger

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Trainer:
    cfg: DictConfig
    world: World
    device: torch.device
    tokenizer: Tokenizer
    model: CTCModel
    forward: nn.Module
    """``TrainingForward``, wrapped in DDP when there are several ranks."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: torch.utils.data.Sampler
    dev_set: SpeechDataset
    checkpointer: Checkpointer
    logger: MetricsLogger | None = None
    """Rank 0's; None on the other ranks."""
    state: TrainState = dataclasses.field(default_factory=TrainState)

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

    @functools.cached_property
    def dev_speakers(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The dev set's speaker statistics where the model uses them (``asr.speakers``), taken
        once: the frontend learns nothing, so they stay the same for the whole run."""
        return speakers.for_recognizer(self.recognizer(self.model), self.dev_set)

    def recognizer(self, model: CTCModel) -> Recognizer:
        return Recognizer(model, self.tokenizer, self.device)

    def error_rates(
        self, model: CTCModel, dataset: SpeechDataset, speaker: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[dict, list[str]]:
        """Greedy WER / CER of ``model`` on ``dataset`` (``speaker``: its speaker statistics), and
        its hypotheses."""
        decoder = GreedyDecoder(self.tokenizer, model.blank_penalty)
        hypotheses = transcribe_dataset(self.recognizer(model), dataset, decoder, speaker=speaker)
        return error_rates(dataset.texts, hypotheses), hypotheses

    def evaluate(self) -> None:
        """Rank 0: dev WER / CER to the logs, examples and a spectrogram to TensorBoard, early
        stopping decided; then every rank saves, keeping the best checkpoints."""
        wer = None
        if self.world.is_main:
            step, dev = self.state.step, self.dev_set
            rates, hypotheses = self.error_rates(self.model, dev, self.dev_speakers)
            wer = rates["wer"]
            self.logger.scalars(step, {"dev/wer": wer, "dev/cer": rates["cer"]})
            for i in range(min(self.cfg.trainer.num_examples, len(dev))):
                self.logger.text(step, f"dev/example_{i}", f"ref: {dev.texts[i]}  \nhyp: {hypotheses[i]}")
            waveform = dev[0][0].to(self.device)
            with torch.no_grad():
                features, _ = self.model.frontend(
                    waveform[None], torch.tensor([len(waveform)], device=self.device)
                )
            self.logger.spectrogram(step, "dev/log_mel", features[0].cpu())
            improved = wer < self.state.best_wer
            self.state.best_wer = min(self.state.best_wer, wer)
            self.state.evals_since_best = 0 if improved else self.state.evals_since_best + 1
            patience = self.cfg.trainer.early_stopping_patience
            self.state.early_stopped = patience is not None and self.state.evals_since_best >= patience
            log.info("step %d: dev WER %.2f%% CER %.2f%%%s", step, 100 * wer, 100 * rates["cer"],
                     " (best)" if improved else "")  # fmt: skip
        self.save(wer)
        self.state = distributed.broadcast(self.state)

    def training_objects(self) -> dict:
        """What ``last.pt`` holds besides the model, by name: each has ``state_dict()``."""
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler,
                "sampler": self.sampler}  # fmt: skip

    def save(self, wer: float | None = None) -> None:
        weights = {**model_payload(self.model, self.tokenizer), "config": self.config_dict()}
        self.checkpointer.save(self.state, weights, self.training_objects(), wer)

    def config_dict(self) -> dict:
        return OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)

    def restore(self, path: Path) -> None:
        self.state = self.checkpointer.restore(path, self.model, self.training_objects())

    def tune_blank_penalty(self, path: Path) -> None:
        """Greedy decoding's blank penalty for the checkpoint at ``path``, chosen on dev and saved in it."""
        model, _ = load_model(path, self.device)
        penalty, wers = tune_blank_penalty(self.recognizer(model), self.dev_set, self.dev_speakers)
        save_checkpoint(path, {**load_checkpoint(path), "blank_penalty": penalty})
        scalars = {f"dev/{path.stem}_blank_penalty": penalty, f"dev/wer_{path.stem}_tuned": wers[penalty]}
        self.logger.scalars(self.state.step, scalars)
        log.info("%s: greedy blank penalty %.2f, dev WER %.2f%% (%.2f%% without)",
                 path.name, penalty, 100 * wers[penalty], 100 * wers[0.0])  # fmt: skip

    def finish(self) -> None:
        """Rank 0, when training ends: ``averaged.pt`` (``trainer.average_best``) and its dev WER,
        the blank penalty of it and ``best.pt`` (``trainer.tune_blank_penalty``), then the test set
        (``data.test_manifest``) with ``best.pt``."""
        if not self.world.is_main:
            return
        files = self.checkpointer.kept_files(self.state)
        if self.cfg.trainer.average_best and len(files) >= 2:
            model = build_model(self.model.name, dataclasses.asdict(self.model.dims)).to(self.device)
            payload = average_checkpoints(files)
            model.load_state_dict(payload["model"])
            wer = self.error_rates(model, self.dev_set, self.dev_speakers)[0]["wer"]
            save_checkpoint(self.checkpointer.directory / "averaged.pt", {**payload, "dev_wer": wer})
            self.logger.scalars(self.state.step, {"dev/wer_averaged": wer})
            log.info("averaged.pt (%d checkpoints): dev WER %.2f%% (best single %.2f%%)",
                     len(files), 100 * wer, 100 * self.state.best_wer)  # fmt: skip
        best = self.checkpointer.directory / "best.pt"
        if self.cfg.trainer.tune_blank_penalty:
            for path in (best, self.checkpointer.directory / "averaged.pt"):
                if path.is_file():
                    self.tune_blank_penalty(path)
        if self.cfg.data.test_manifest is not None and best.is_file():
            model, _ = load_model(best, self.device)
            test = SpeechDataset(
                read_manifest(self.cfg.data.test_manifest), self.tokenizer, model.dims.sample_rate
            )
            speaker = speakers.for_recognizer(self.recognizer(model), test)
            rates = self.error_rates(model, test, speaker)[0]
            self.logger.scalars(self.state.step, {"test/wer": rates["wer"], "test/cer": rates["cer"]})
            log.info("test (%s, best.pt): WER %.2f%% CER %.2f%%", self.cfg.data.test_manifest,
                     100 * rates["wer"], 100 * rates["cer"])  # fmt: skip
            if model.blank_penalty:
                model.blank_penalty = 0.0
                untuned = self.error_rates(model, test, speaker)[0]["wer"]
                self.logger.scalars(self.state.step, {"test/wer_without_blank_penalty": untuned})
                log.info("test without the blank penalty: WER %.2f%%", 100 * untuned)
