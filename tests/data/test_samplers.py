"""The training samplers: RandomIdentitySampler (P identities x K images, seeded epochs, disjoint shares across
processes) and the AICity recipe's balanced sampler (data/vehicle/sampling.py)."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from reidkit.data import RandomIdentitySampler
from reidkit.data.vehicle.sampling import balanced_sampler, balanced_weights
from reidkit.errors import ConfigError, DatasetError

# 10 identities with 1..10 images; identity 0 has fewer than K = 4 images and must be padded.
SAMPLES = [(f"{pid}_{i}.jpg", pid, i % 3) for pid in range(10) for i in range(pid + 1)]


def batches(sampler: RandomIdentitySampler) -> list[list[int]]:
    indices = list(sampler)
    size = sampler.batch_size_per_process
    return [indices[i: i + size] for i in range(0, len(indices), size)]


def test_batches_hold_p_identities_of_k_images():
    sampler = RandomIdentitySampler(SAMPLES, batch_size=8, num_instances=4, seed=1)
    assert len(sampler) == len(list(sampler)) and len(sampler) % 8 == 0 and len(sampler) > 0
    for batch in batches(sampler):
        counts = Counter(SAMPLES[i][1] for i in batch)
        assert len(counts) == 2 and set(counts.values()) == {4}
        assert all(len({SAMPLES[i][1] for i in batch[k: k + 4]}) == 1 for k in (0, 4))  # groups are contiguous
    # Each identity contributes at most floor(max(n, K) / K) groups of K, at least K images when n < K (padded).
    seen = Counter(SAMPLES[i][1] for i in sampler)
    for pid, count in seen.items():
        assert count % 4 == 0 and count <= 4 * max(1, (pid + 1) // 4)


def test_small_identity_is_padded_with_its_own_images():
    sampler = RandomIdentitySampler(SAMPLES, batch_size=8, num_instances=4, seed=1)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        padded = [i for i in sampler if SAMPLES[i][1] == 0]
        assert padded in ([], [0, 0, 0, 0])


def test_seeded_epochs():
    first = RandomIdentitySampler(SAMPLES, batch_size=8, num_instances=4, seed=3)
    second = RandomIdentitySampler(SAMPLES, batch_size=8, num_instances=4, seed=3)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)
    assert list(RandomIdentitySampler(SAMPLES, batch_size=8, num_instances=4, seed=4)) != list(first)


def test_distributed_shares_are_disjoint_and_form_the_global_batch():
    kwargs = dict(batch_size=8, num_instances=2, seed=7)
    whole = RandomIdentitySampler(SAMPLES, **kwargs)
    shards = [RandomIdentitySampler(SAMPLES, rank=r, world_size=2, **kwargs) for r in range(2)]
    for sampler in (whole, *shards):
        sampler.set_epoch(5)
    assert all(s.batch_size_per_process == 4 for s in shards) and len(shards[0]) == len(shards[1])
    for global_batch, *parts in zip(batches(whole), *map(batches, shards)):
        pids = [{SAMPLES[i][1] for i in part} for part in parts]
        assert all(len(p) == 2 for p in pids) and not pids[0] & pids[1]  # P / world_size identities each
        assert sorted(parts[0] + parts[1]) == sorted(global_batch)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=10, num_instances=4), "batch_size 10 must be a multiple of num_instances 4"),
    (dict(batch_size=12, num_instances=4, world_size=2), "3 identities per batch cannot be shared by 2 processes"),
    (dict(batch_size=48, num_instances=4), "a batch needs 12 identities but the training set has 10"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RandomIdentitySampler(SAMPLES, **kwargs)


def test_balanced_weights_are_n_over_count():
    assert balanced_weights([7, 7, 7, 2]).tolist() == [4 / 3, 4 / 3, 4 / 3, 4.0]


def test_balanced_sampler_draws_identities_equally():
    samples = [("a", 0, 0)] * 90 + [("b", 1, 0)] * 10  # identity 1 is rare
    sampler = balanced_sampler(samples, num_samples=20000, generator=torch.Generator().manual_seed(0))
    counts = Counter(samples[i][1] for i in sampler)
    assert len(sampler) == 20000
    assert counts[1] / 20000 == pytest.approx(0.5, abs=0.02)  # 10% of the images, half of the draws
    with pytest.raises(DatasetError, match="empty"):
        balanced_sampler([])


def test_balanced_sampler_is_the_train_loader_option(tmp_path):
    from PIL import Image

    from reidkit.data import build_train_loader

    samples = []
    for i in range(12):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (8, 8)).save(path)
        samples.append((str(path), 0 if i < 10 else 1, 0))
    common = dict(height=8, width=8, batch_size=4, num_instances=2, recipe="vehicle", seed=0)
    loader = build_train_loader(samples, sampler="balanced", **common)
    pids = torch.cat([b["pid"] for b in loader])
    assert len(pids) == 12 and 1 in pids.tolist()  # a 2-image identity is drawn about half the time
    again = torch.cat([b["pid"] for b in build_train_loader(samples, sampler="balanced", **common)])
    assert torch.equal(pids, again)  # seeded
    with pytest.raises(ConfigError, match="data.sampler='shufle'"):
        build_train_loader(samples, sampler="shufle", **common)
