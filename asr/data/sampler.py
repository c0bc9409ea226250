"""Batch sampler: shuffled, similar-length batches, reproducible per epoch, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class SortedShuffleBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffle, sort each window of ``batch_size * window_batches`` utterances by duration, cut it
    into batches and shuffle the batches: little padding, still random.

    The order depends only on ``seed`` and the epoch, so ``start_batch`` can resume an epoch
    part-way through without reading the batches already seen.
    """

    def __init__(self, durations: list[float], batch_size: int, seed: int, window_batches: int = 50) -> None:
        self.durations = durations
        self.batch_size = batch_size
        self.seed = seed
        self.window = batch_size * window_batches
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.durations), generator=generator).tolist()
        batches = []
        for start in range(0, len(order), self.window):
            window = sorted(order[start : start + self.window], key=self.durations.__getitem__)
            batches += [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return -(-len(self.durations) // self.batch_size) - self.start_batch
