"""What a training run keeps on disk: ``last.pt`` to continue from, the best checkpoints by dev
WER, their average, and the policy for continuing a run that already has a ``last.pt``.

The files are ``asr.checkpoint``'s format; this module decides which are written, kept and read.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.checkpoint import load_checkpoint, model_identity, save_checkpoint
from asr.errors import UserError
from asr.train import distributed
from asr.train.distributed import World

log = logging.getLogger(__name__)


def best_first(evaluations: list[dict]) -> list[dict]:
    """``{"step", "wer", ...}`` evaluations by dev WER, ties to the earlier: the order in which
    ``trainer.keep_best`` keeps checkpoints."""
    return sorted(evaluations, key=lambda e: (e["wer"], e["step"]))


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


def resume_from(mode: str, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, following ``trainer.resume`` (auto / true / false)."""
    last = run_dir / "checkpoints" / "last.pt"
    if mode == "false" and last.is_file():
        raise UserError(
            f"{last} exists; continue it with trainer.resume=auto or choose another hydra.run.dir"
        )
    if mode == "true" and not last.is_file():
        raise UserError(f"trainer.resume=true but {last} does not exist; start with trainer.resume=auto")
    return last if mode != "false" and last.is_file() else None


@dataclasses.dataclass
class Checkpointer:
    """Saves and restores one run's checkpoints under ``directory``. Rank 0 alone writes; every
    rank calls ``save`` (it gathers the ranks' random states)."""

    directory: Path
    keep_best: int
    world: World
    device: torch.device

    def remove_stale(self) -> None:
        """Temporary files of a save that was killed half-way."""
        for stale in self.directory.glob(".*.pt"):
            stale.unlink()

    def save(
        self, state: TrainState, weights: dict, training: dict[str, Any], wer: float | None = None
    ) -> None:
        """``last.pt``: ``weights`` (a model payload), ``state`` and the ``state_dict()`` of each
        of ``training``'s objects, so that the run continues exactly. With a dev ``wer``, also
        ``best-step*.pt`` among the ``keep_best`` (``state.kept``) and ``best.pt``."""
        rng = distributed.gather(rng_state(self.device))
        if not self.world.is_main:
            return
        kept, evicted = state.kept, []
        if wer is not None:
            entry = {"step": state.step, "wer": wer, "file": f"best-step{state.step:07d}.pt"}
            ranked = best_first([*kept, entry])
            kept, evicted = ranked[: self.keep_best], ranked[self.keep_best :]
            if entry in kept:
                save_checkpoint(self.directory / entry["file"], weights)
                if kept[0] is entry:
                    save_checkpoint(self.directory / "best.pt", weights)
        state.kept = kept
        payload = {
            **weights,
            **{name: thing.state_dict() for name, thing in training.items()},
            "train_state": dataclasses.asdict(state),
            "rng": rng,
        }
        save_checkpoint(self.directory / "last.pt", payload)
        for entry in evicted:  # only now that last.pt no longer lists them
            (self.directory / entry["file"]).unlink(missing_ok=True)

    def restore(self, path: Path, model: torch.nn.Module, training: dict[str, Any]) -> TrainState:
        """Load ``path`` (a ``last.pt``) into ``model`` and ``training``'s objects; its progress."""
        checkpoint = load_checkpoint(path)
        if model_identity(checkpoint) != (model.name, dataclasses.asdict(model.dims)):
            raise UserError(
                f"{path} holds a model with other settings than this config's model; "
                "continue it with its own config, or start in another hydra.run.dir"
            )
        model.load_state_dict(checkpoint["model"])
        for name, thing in training.items():
            thing.load_state_dict(checkpoint[name])
        if len(checkpoint["rng"]) == self.world.size:
            set_rng_state(checkpoint["rng"][self.world.rank], self.device)
        else:
            log.warning("%s was written by %d processes, not %d: random state not restored",
                        path, len(checkpoint["rng"]), self.world.size)  # fmt: skip
        return TrainState(**checkpoint["train_state"])

    def kept_files(self, state: TrainState) -> list[Path]:
        return [self.directory / entry["file"] for entry in state.kept]
