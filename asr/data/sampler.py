"""Length-bucketing batch sampler: similar-length batches of a fixed count or a fixed amount of audio,
reshuffled every epoch, split across data-parallel ranks, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Each epoch: shuffle the utterances, sort each window of them by duration, cut the window
    into batches, then shuffle the batches in groups of ``num_replicas * accumulate``. The first
    ``sorted_epochs`` epochs instead go through all utterances shortest first (SortaGrad, Deep
    Speech 2: CTC learns to align on short utterances, which is quicker, before long ones).

    A batch holds ``batch_size`` utterances, or, with ``max_batch_seconds``, as many as fit in that
    much padded audio (``count * longest <= max_batch_seconds``; a longer utterance goes alone).
    One group is one optimiser step: rank ``r`` reads its ``accumulate`` batches of every group,
    so ranks get disjoint batches of similar length and the same count; an incomplete last group
    is left out of that epoch. The batches depend only on ``seed`` and the epoch, never on the
    number of ranks, so N ranks see the same data per step as one process accumulating N batches.

    ``position`` counts this rank's batches already used in the epoch (the training loop reports
    them with ``advance``); ``state_dict`` holds the epoch and the steps done in it.
    """

    def __init__(
        self, durations: list[float], *, batch_size: int = 16, max_batch_seconds: float | None = None,
        seed: int = 0, num_replicas: int = 1, rank: int = 0, accumulate: int = 1, window_batches: int = 50,
        sorted_epochs: int = 0,
    ) -> None:  # fmt: skip
        if max_batch_seconds is not None and max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be positive, got {max_batch_seconds}")
        if batch_size < 1 or accumulate < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"bad sampler arguments: {batch_size=} {accumulate=} {rank=} {num_replicas=}")
        self.durations = durations
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.seed = seed
        self.num_replicas, self.rank, self.accumulate = num_replicas, rank, accumulate
        self.sorted_epochs = sorted_epochs
        mean_batch = batch_size
        if max_batch_seconds is not None:
            mean_batch = max(1, round(max_batch_seconds * len(durations) / sum(durations)))
        self.window = mean_batch * window_batches
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` in step order, all ranks together (``group_size`` per step)."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        shortest_first = epoch < self.sorted_epochs
        if shortest_first:
            batches = self._cut(sorted(range(len(self.durations)), key=self.durations.__getitem__))
        else:
            order = torch.randperm(len(self.durations), generator=generator).tolist()
            batches = []
            for start in range(0, len(order), self.window):
                window = sorted(order[start : start + self.window], key=self.durations.__getitem__)
                batches += self._cut(window)
        size = self.group_size
        groups = [batches[i : i + size] for i in range(0, len(batches) - size + 1, size)]
        if not shortest_first:
            groups = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
        return [batch for group in groups for batch in group]

    def _cut(self, ordered: list[int]) -> list[list[int]]:
        if self.max_batch_seconds is None:
            return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        batches, batch = [], []
        for index in ordered:  # ascending duration: the newest utterance is the longest
            if batch and (len(batch) + 1) * self.durations[index] > self.max_batch_seconds:
                batches.append(batch)
                batch = []
            batch.append(index)
        return batches + [batch] if batch else batches

    @property
    def group_size(self) -> int:
        return self.num_replicas * self.accumulate

    def rank_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        if self._cache is None or self._cache[0] != epoch:
            batches = self.all_batches(epoch)
            size, first = self.group_size, self.rank * self.accumulate
            mine = [
                batches[i + first + j] for i in range(0, len(batches), size) for j in range(self.accumulate)
            ]
            self._cache = (epoch, mine)
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch)[self.position :]

    def __len__(self) -> int:
        """Batches left in the current epoch on this rank."""
        return len(self.rank_batches(self.epoch)) - self.position

    def batches_per_epoch(self) -> int:
        return len(self.rank_batches(self.epoch))

    def advance(self, batches: int = 1) -> bool:
        """Record ``batches`` more batches as used; returns True when that ends the epoch."""
        self.position += batches
        if self.position < self.batches_per_epoch():
            return False
        self.epoch, self.position = self.epoch + 1, 0
        return True

    def state_dict(self) -> dict[str, int]:
        """Epoch and steps (groups) done in it: meaningful for any number of ranks."""
        return {"epoch": self.epoch, "steps": self.position // self.accumulate}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["steps"] * self.accumulate
