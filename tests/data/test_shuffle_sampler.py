"""data.sampler=shuffle: every sample once per epoch in a seeded random order (the AICity released command)."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from reidkit.data import build_train_loader
from reidkit.data.samplers import SAMPLERS, ShuffledSampler
from reidkit.errors import ConfigError


def test_every_sample_once_per_epoch_in_a_seeded_order():
    sampler = ShuffledSampler(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and len(sampler) == 50
    assert first != list(range(50))
    assert list(ShuffledSampler(50, seed=3)) == first  # seeded
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(50)) and second != first  # a new order each epoch
    sampler.set_epoch(0)
    assert list(sampler) == first  # a resumed epoch draws the same order
    assert list(ShuffledSampler(50, seed=4)) != first


def test_process_shares_are_disjoint_and_equal():
    whole = ShuffledSampler(11, seed=1)
    shares = [ShuffledSampler(11, seed=1, rank=r, world_size=3) for r in range(3)]
    for s in (whole, *shares):
        s.set_epoch(2)
    parts = [list(s) for s in shares]
    assert [len(p) for p in parts] == [3, 3, 3] == [len(s) for s in shares]
    merged = [i for p in parts for i in p]
    assert len(set(merged)) == 9 and set(merged) <= set(whole)
    assert sorted(merged) == sorted(list(whole)[:9])  # the first 9 of the epoch's order, dealt round-robin


def test_it_is_the_train_loader_option(tmp_path):
    samples = []
    for i in range(10):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (8, 8), (25 * i, 0, 0)).save(path)
        samples.append((str(path), i % 3, 0))
    common = dict(height=8, width=8, batch_size=4, num_instances=4, recipe="vehicle", seed=0, sampler="shuffle")
    loader = build_train_loader(samples, **common)
    assert len(loader) == 2  # 10 images, batches of 4, the incomplete last batch dropped
    paths = [p for batch in loader for p in batch["path"]]
    assert len(paths) == len(set(paths)) == 8
    again = [p for batch in build_train_loader(samples, **common) for p in batch["path"]]
    assert again == paths
    assert SAMPLERS.get("shuffle").batch_problem(24, 4) is None  # any batch size: no P x K constraint
    assert next(iter(build_train_loader(samples, **{**common, "batch_size": 5})))["img"].shape[0] == 5
    with pytest.raises(ConfigError, match="make no full batch"):
        build_train_loader(samples, **{**common, "batch_size": 12})
    with pytest.raises(ConfigError, match="multiple of the 2 processes"):
        build_train_loader(samples, **{**common, "batch_size": 5}, rank=0, world_size=2)
    shard = build_train_loader(samples, **common, rank=1, world_size=2)
    assert next(iter(shard))["img"].shape[0] == 2 and isinstance(next(iter(shard))["img"], torch.Tensor)
