"""identity_once: every identity once per epoch with K instances (the AITL video and BDB references), against the
reference's iterations-per-epoch formula floor(num_ids * K / batch) (DataLoader drop_last=True) on replicas of
the MARS and Market-1501 training sets' identity counts."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from reidkit.data.samplers import SAMPLERS, IdentityOnceSampler, RandomIdentitySampler


def replica(num_ids: int, total: int, low: int, seed: int) -> list[tuple[str, int, int]]:
    """`num_ids` identities holding `total` samples between them, each at least `low` (some below K = 4)."""
    rng = np.random.default_rng(seed)
    counts = np.full(num_ids, low)
    weights = rng.exponential(size=num_ids)  # skewed like the real sets: a few identities hold many samples
    np.add.at(counts, rng.choice(num_ids, total - low * num_ids, p=weights / weights.sum()), 1)
    return [(f"{pid}_{i}", pid, i % 6) for pid in range(num_ids) for i in range(counts[pid])]


MARS = replica(625, 8298, 1, seed=0)  # 625 training identities, 8298 tracklets
MARKET = replica(751, 12936, 2, seed=1)  # 751 training identities, 12936 images


def iterations(sampler: RandomIdentitySampler) -> int:
    """Batches per epoch as the trainer's DataLoader (drop_last=True) yields them."""
    return len(DataLoader(range(len(sampler)), sampler=sampler, batch_size=sampler.batch_size_per_process,
                          drop_last=True))


@pytest.mark.parametrize("samples, batch_size, expected", [(MARS, 32, 78), (MARKET, 128, 23)])
def test_iterations_per_epoch_follow_the_reference_formula(samples, batch_size, expected):
    num_ids = len({pid for _, pid, _ in samples})
    assert expected == num_ids * 4 // batch_size
    once = IdentityOnceSampler(samples, batch_size, 4, seed=0)
    assert iterations(once) == expected
    # The tracklet/image-walking identity sampler trains 3-4x as many steps per epoch on the same set.
    assert iterations(RandomIdentitySampler(samples, batch_size, 4, seed=0)) > 2.5 * expected


def test_each_identity_at_most_once_per_epoch_with_k_instances():
    sampler = IdentityOnceSampler(MARS, 32, 4, seed=3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        groups = [indices[i:i + 4] for i in range(0, len(indices), 4)]
        pids = [MARS[g[0]][1] for g in groups]
        assert len(pids) == 78 * 8 and len(set(pids)) == len(pids)  # 625 - 78 * 8 = 1 identity left out
        for group in groups:
            assert len({MARS[i][1] for i in group}) == 1
            available = sum(1 for _, pid, _ in MARS if pid == MARS[group[0]][1])
            # Without replacement when the identity has K samples, with replacement otherwise.
            assert len(set(group)) == min(4, available) if available >= 4 else len(set(group)) <= available
    single = [pid for pid, n in Counter(p for _, p, _ in MARS).items() if n == 1]
    assert single, "the replica should hold identities with fewer than K samples"


def test_seeded_and_changes_with_the_epoch():
    first, second = (IdentityOnceSampler(MARKET, 128, 4, seed=5) for _ in range(2))
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)
    assert list(IdentityOnceSampler(MARKET, 128, 4, seed=6)) != list(first)
    left_out = [{p for _, p, _ in MARKET} - {MARKET[i][1] for i in s} for s in (first, second)]
    assert all(len(ids) == 751 - 23 * 32 for ids in left_out) and left_out[0] != left_out[1]


def test_distributed_shards_are_disjoint_and_form_the_global_batches():
    whole = IdentityOnceSampler(MARS, 32, 4, seed=7)
    shards = [IdentityOnceSampler(MARS, 32, 4, seed=7, rank=r, world_size=4) for r in range(4)]
    for sampler in (whole, *shards):
        sampler.set_epoch(2)
    assert all(s.batch_size_per_process == 8 and iterations(s) == 78 for s in shards)
    per_rank = [list(s) for s in shards]
    global_indices = list(whole)
    for step in range(78):
        parts = [indices[step * 8:(step + 1) * 8] for indices in per_rank]
        pids = [{MARS[i][1] for i in part} for part in parts]
        assert all(len(p) == 2 for p in pids) and len(set().union(*pids)) == 8  # disjoint identities
        assert sorted(sum(parts, [])) == sorted(global_indices[step * 32:(step + 1) * 32])  # complete


def test_registered_as_a_pk_sampler():
    entry = SAMPLERS.get("identity_once")
    plan = entry.build(MARS, batch_size=32, num_instances=4, seed=0, rank=1, world_size=2)
    assert isinstance(plan.sampler, IdentityOnceSampler) and plan.batch_size == 16 and entry.identity_batches
    assert entry.batch_problem(30, 4) and entry.batch_problem(32, 4) is None
