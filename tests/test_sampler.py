import random

import pytest

from asr.data.sampler import BucketBatchSampler

_rng = random.Random(0)
DURATIONS = [_rng.uniform(1.0, 12.0) for _ in range(500)]


def test_dynamic_batches_fill_up_to_max_batch_seconds():
    sampler = BucketBatchSampler(DURATIONS, max_batch_seconds=60.0, seed=1)
    batches = sampler.rank_batches(0)
    assert sorted(i for batch in batches for i in batch) == list(range(len(DURATIONS)))
    padded = [len(batch) * max(DURATIONS[i] for i in batch) for batch in batches]
    assert max(padded) <= 60.0
    assert len({len(batch) for batch in batches}) > 3, "batch size should follow utterance length"
    audio = sum(DURATIONS)
    assert audio / sum(padded) > 0.9, "sorted windows keep padding low"


def test_epochs_reshuffle_and_are_reproducible():
    sampler = BucketBatchSampler(DURATIONS, batch_size=8, seed=1)
    again = BucketBatchSampler(DURATIONS, batch_size=8, seed=1)
    assert sampler.rank_batches(0) == again.rank_batches(0)
    assert sampler.rank_batches(0) != sampler.rank_batches(1)


@pytest.mark.parametrize("max_batch_seconds", [None, 40.0])
def test_ranks_get_disjoint_equal_shares_of_what_one_process_accumulates(max_batch_seconds):
    common = {"batch_size": 7, "max_batch_seconds": max_batch_seconds, "seed": 2}
    ranks = [BucketBatchSampler(DURATIONS, num_replicas=3, rank=r, accumulate=2, **common) for r in range(3)]
    single = BucketBatchSampler(DURATIONS, accumulate=6, **common)
    shares = [sampler.rank_batches(0) for sampler in ranks]
    assert len({len(share) for share in shares}) == 1
    flat = [set(i for batch in share for i in batch) for share in shares]
    assert not (flat[0] & flat[1]) and not (flat[1] & flat[2]) and not (flat[0] & flat[2])
    steps = len(shares[0]) // 2
    one = single.rank_batches(0)
    for step in range(steps):  # each step: the same 6 batches, rank r holding batches 2r, 2r+1
        together = [batch for share in shares for batch in share[2 * step : 2 * step + 2]]
        assert together == one[6 * step : 6 * step + 6]


def test_state_dict_resumes_mid_epoch():
    sampler = BucketBatchSampler(DURATIONS, batch_size=10, seed=3)
    whole = list(sampler)
    assert not sampler.advance(7)
    state = sampler.state_dict()
    resumed = BucketBatchSampler(DURATIONS, batch_size=10, seed=3)
    resumed.load_state_dict(state)
    assert list(resumed) == whole[7:] and len(resumed) == len(whole) - 7
    assert resumed.advance(len(whole) - 7) and resumed.state_dict() == {"epoch": 1, "steps": 0}
    assert list(resumed) == sampler.rank_batches(1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        BucketBatchSampler(DURATIONS, max_batch_seconds=0.0)
    with pytest.raises(ValueError):
        BucketBatchSampler(DURATIONS, num_replicas=2, rank=2)


@pytest.mark.parametrize("accumulate", [1, 3])
def test_sortagrad_takes_the_first_epoch_shortest_first_then_shuffles(accumulate):
    sampler = BucketBatchSampler(DURATIONS, batch_size=8, seed=1, accumulate=accumulate, sorted_epochs=1)
    first, second = sampler.all_batches(0), sampler.all_batches(1)
    flat = [i for batch in first for i in batch]
    assert flat == sorted(range(len(DURATIONS)), key=DURATIONS.__getitem__)[: len(flat)], "shortest first"
    assert len(flat) > len(DURATIONS) - 8 * accumulate, "only an incomplete last group is left out"
    assert second == BucketBatchSampler(DURATIONS, batch_size=8, seed=1, accumulate=accumulate).all_batches(1)
