"""Top DropBlock / Batch DropBlock semantics on hand-built feature maps (docs/specs/top-db-net.md sections 3 and 4)."""
from __future__ import annotations

import random

import pytest
import torch

from reidkit.errors import ConfigError
from reidkit.models.drop_blocks import BatchDropBlock, TopDropBlock, batch_drop_mask, top_drop_mask


def _rows_dropped(mask: torch.Tensor) -> list[list[int]]:
    """Per sample, the rows that are zero in every column (and the mask must be all-0 or all-1 per row)."""
    rows = []
    for m in mask[:, 0]:
        assert torch.all((m == 0).all(1) | (m == 1).all(1)), "a row is only partly dropped"
        rows.append(torch.nonzero((m == 0).all(1)).flatten().tolist())
    return rows


def hand_map() -> torch.Tensor:
    """[2, 2, 6, 2]. Sample 0: row 4 has one big value (max score high, mean low), rows 1 and 2 are uniformly
    medium (mean high), row 0 small. Sample 1: the energy sits in rows 0 and 5."""
    x = torch.zeros(2, 2, 6, 2)
    x[0, :, 0, :] = 0.1
    x[0, 0, 4, 0] = 3.0  # A = 9 at one position; row max 9, row mean 4.5
    x[0, :, 1, :] = 1.8  # A = 2 * 1.8^2 = 6.48 everywhere; row max 6.48, mean 6.48
    x[0, :, 2, :] = 1.7  # A = 5.78 everywhere
    x[1, 1, 0, :] = 2.0
    x[1, 0, 5, 1] = 2.5
    x[1, :, 3, :] = 0.5
    return x


def test_top_mask_drops_top_rows_per_sample_by_max_score():
    x = hand_map()
    mask = top_drop_mask(x, 0.33, "max")
    assert mask.shape == (2, 1, 6, 2)
    # round(0.33 * 6) == 2 rows per sample, different rows for each sample (not shared by the batch)
    assert [sorted(r) for r in _rows_dropped(mask)] == [[1, 4], [0, 5]]


def test_top_mask_mean_row_score_option():
    mask = top_drop_mask(hand_map(), 0.33, "mean")
    # by mean, sample 0's single hot spot (row 4, mean 4.5) loses to the uniform rows 1 and 2
    assert sorted(_rows_dropped(mask)[0]) == [1, 2]


def test_top_mask_drops_round_033_h_rows_not_necessarily_contiguous():
    x = torch.zeros(1, 3, 24, 8)
    hot = [0, 3, 7, 8, 12, 17, 20, 23]
    for rank, row in enumerate(hot):
        x[0, :, row, rank % 8] = 10.0 + rank
    x += 0.01
    mask = top_drop_mask(x)
    assert sorted(_rows_dropped(mask)[0]) == hot  # round(0.33 * 24) == 8
    assert int((mask == 0).sum()) == 8 * 8


def test_top_mask_score_is_l2_normalised_sum_of_squares():
    # Scaling one sample leaves its mask unchanged; the score is per sample, so samples never compete.
    x = hand_map()
    scaled = x.clone()
    scaled[1] *= 1000
    assert torch.equal(top_drop_mask(x), top_drop_mask(scaled))
    # sum of squares over channels, not sum: opposite signs do not cancel
    y = torch.zeros(1, 2, 3, 1)
    y[0, 0, 2, 0], y[0, 1, 2, 0] = 5.0, -5.0
    y[0, :, 0, 0] = 1.0
    assert _rows_dropped(top_drop_mask(y, 0.33)) == [[2]]


def test_top_drop_block_training_only_and_zeroes_all_channels():
    x = hand_map()
    block = TopDropBlock(0.33)
    block.train()
    out = block(x)
    assert torch.equal(out, x * top_drop_mask(x))
    assert torch.all(out[0, :, 4] == 0) and torch.all(out[0, :, 1] == 0)
    assert torch.equal(out[0, :, 2], x[0, :, 2])
    block.eval()
    assert torch.equal(block(x), x)


def test_top_mask_is_constant_for_backprop():
    x = hand_map().requires_grad_(True)
    block = TopDropBlock(0.33).train()
    block(x).sum().backward()
    assert torch.equal(x.grad, top_drop_mask(x.detach()).expand_as(x))


def test_batch_drop_one_block_shared_by_batch():
    x = torch.randn(5, 3, 24, 8)
    random.seed(3)
    mask = batch_drop_mask(x, 0.33, 1.0)
    rows = _rows_dropped(mask)
    assert all(r == rows[0] for r in rows), "the random block must be the same for every sample"
    assert len(rows[0]) == 8 and rows[0] == list(range(rows[0][0], rows[0][0] + 8))
    # start row drawn with Python's random exactly as the reference: randint(0, H - rh), then the column
    expected = random.Random(3)
    assert rows[0][0] == expected.randint(0, 24 - 8)


def test_batch_drop_width_ratio_and_start_range():
    x = torch.ones(2, 1, 10, 8)
    starts = set()
    for seed in range(40):
        random.seed(seed)
        mask = batch_drop_mask(x, 0.5, 0.5)
        zero = torch.nonzero(mask[0, 0] == 0)
        assert len(zero) == 5 * 4  # round(0.5*10) x round(0.5*8)
        r0, c0 = zero.min(0).values.tolist()
        assert 0 <= r0 <= 5 and 0 <= c0 <= 4
        assert torch.equal(mask[0], mask[1])
        starts.add(r0)
    assert len(starts) > 3, "the block position should vary between draws"


def test_batch_drop_block_training_only():
    x = torch.randn(2, 4, 12, 4)
    block = BatchDropBlock(0.33, 1.0).train()
    random.seed(0)
    out = block(x)
    random.seed(0)
    assert torch.equal(out, x * batch_drop_mask(x, 0.33, 1.0))
    assert int((out == 0).all(1).all(2).sum()) == 2 * round(0.33 * 12)
    block.eval()
    assert torch.equal(block(x), x)


def test_bad_drop_options_raise_clear_errors():
    with pytest.raises(ConfigError, match="row_score.*'median'"):
        TopDropBlock(0.33, "median")
    with pytest.raises(ConfigError, match="drop_height_ratio.*1.5"):
        BatchDropBlock(1.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        top_drop_mask(torch.zeros(3, 4))
