"""Train/test DataLoaders over the synthetic Market fixture."""
from __future__ import annotations

import torch

from reidkit.data import build_dataset, build_test_loader, build_train_loader


def test_train_loader_batches(synthetic_market_root):
    data = build_dataset("market1501", root=synthetic_market_root)
    loader = build_train_loader(data.train, height=32, width=16, batch_size=8, num_instances=2, seed=0)
    loader.sampler.set_epoch(0)
    batches = list(loader)
    assert len(batches) == len(loader) > 0
    batch = batches[0]
    assert batch["img"].shape == (8, 3, 32, 16) and batch["img"].dtype == torch.float32
    assert batch["pid"].tolist().count(batch["pid"][0].item()) == 2 and len(set(batch["pid"].tolist())) == 4
    assert all(path.endswith(".jpg") for path in batch["path"])
    assert batch["camid"].max() < data.num_train_cams and batch["pid"].max() < data.num_train_pids
    shard = build_train_loader(data.train, height=32, width=16, batch_size=8, num_instances=2, seed=0, rank=1,
                               world_size=2)
    assert next(iter(shard))["img"].shape[0] == 4


def test_test_loader_keeps_order(synthetic_market_root):
    data = build_dataset("market1501", root=synthetic_market_root)
    loader = build_test_loader(data.gallery, height=32, width=16, batch_size=16)
    paths = [p for batch in loader for p in batch["path"]]
    assert paths == [p for p, _, _ in data.gallery]
    first = next(iter(loader))["img"]
    assert torch.equal(first, next(iter(loader))["img"])  # no random augmentation at test time


def test_iterating_the_test_loader_leaves_the_global_rng_alone(synthetic_market_root):
    import torch

    from reidkit.data import build_dataset, build_test_loader

    data = build_dataset("market1501", root=synthetic_market_root)
    loader = build_test_loader(data.query[:4], height=64, width=32, batch_size=2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    for _ in loader:
        pass
    assert torch.equal(torch.rand(3), expected)
