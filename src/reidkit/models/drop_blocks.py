"""Top DropBlock (Top-DB-Net, docs/specs/top-db-net.md section 3) and the random Batch DropBlock (BDB,
docs/specs/top-db-net.md section 4).

Masks are [B, 1, H, W] with 1 = kept, 0 = dropped, in the dtype/device of the feature map; both blocks are
the identity in eval mode.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from reidkit.errors import ConfigError

ROW_SCORES = ("max", "mean")


def _check_ratio(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def top_drop_mask(x: torch.Tensor, h_ratio: float = 0.33, row_score: str = "max") -> torch.Tensor:
    """Per-sample mask dropping the round(h_ratio * H) most activated rows of x [B, C, H, W].

    Activation A = sum_c x_c^2, L2-normalised over the H*W positions of each sample; a row's score is the max
    (reference code) or the mean (paper) of A over the width. The top rows need not be contiguous.
    """
    if x.dim() != 4:
        raise ValueError(f"top_drop_mask expects a [B, C, H, W] feature map, got shape {tuple(x.shape)}")
    if row_score not in ROW_SCORES:
        raise ConfigError(f"row_score must be one of {ROW_SCORES}, got {row_score!r}")
    b, _, h, w = x.shape
    # Python's round, as the reference: round(0.33 * 24) == 8.
    rh = round(h_ratio * h)
    mask = x.new_ones(b, h)
    if rh > 0:  # the reference's ind[:, -0:] would drop every row when rh == 0; the spec drops none
        with torch.no_grad():  # the mask is a constant for backprop, as in the reference
            act = F.normalize(x.pow(2).sum(1).reshape(b, h * w), p=2, dim=1).reshape(b, h, w)
            score = act.amax(2) if row_score == "max" else act.mean(2)
            # Same call as the reference so that ties pick the same rows.
            top = torch.argsort(score, dim=1)[:, h - rh :]
        mask.scatter_(1, top, 0.0)
    return mask.reshape(b, 1, h, 1).expand(b, 1, h, w)


def batch_drop_mask(x: torch.Tensor, h_ratio: float = 0.33, w_ratio: float = 1.0) -> torch.Tensor:
    """One random block of round(h_ratio*H) x round(w_ratio*W), zeroed for the whole batch.

    Draws the block start with Python's `random` (two randint calls, rows then columns), exactly as the
    reference does, so a run seeded like the reference drops the same blocks.
    """
    if x.dim() != 4:
        raise ValueError(f"batch_drop_mask expects a [B, C, H, W] feature map, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    rh, rw = round(h_ratio * h), round(w_ratio * w)
    sx = random.randint(0, h - rh)
    sy = random.randint(0, w - rw)
    mask = x.new_ones(1, 1, h, w)
    mask[:, :, sx : sx + rh, sy : sy + rw] = 0
    return mask.expand(b, 1, h, w)


class TopDropBlock(nn.Module):
    """Training: zero the top round(h_ratio*H) rows of each sample (see top_drop_mask). Eval: identity."""

    def __init__(self, h_ratio: float = 0.33, row_score: str = "max") -> None:
        super().__init__()
        if row_score not in ROW_SCORES:
            raise ConfigError(f"row_score must be one of {ROW_SCORES}, got {row_score!r}")
        self.h_ratio = _check_ratio(h_ratio, "drop_height_ratio")
        self.row_score = row_score

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return top_drop_mask(x, self.h_ratio, self.row_score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x) if self.training else x

    def extra_repr(self) -> str:
        return f"h_ratio={self.h_ratio}, row_score={self.row_score!r}"


class BatchDropBlock(nn.Module):
    """Training: zero one random block shared by the whole batch (see batch_drop_mask). Eval: identity."""

    def __init__(self, h_ratio: float = 0.33, w_ratio: float = 1.0) -> None:
        super().__init__()
        self.h_ratio = _check_ratio(h_ratio, "drop_height_ratio")
        self.w_ratio = _check_ratio(w_ratio, "drop_width_ratio")

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return batch_drop_mask(x, self.h_ratio, self.w_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x) if self.training else x

    def extra_repr(self) -> str:
        return f"h_ratio={self.h_ratio}, w_ratio={self.w_ratio}"
