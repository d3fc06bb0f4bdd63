"""Attribute recognition loss: BCE-with-logits of each attribute group's logits against its one-hot targets.

    bce = AttributeBCELoss()
    loss = bce({"irrelevant": logits_irr, "relevant": logits_rel}, {"irrelevant": t_irr, "relevant": t_rel})

Each group's logits concatenate the class scores of its attributes (MARS ID-relevant: upcolor 9 + downcolor
10 + ... = 41); the targets concatenate the attributes' one-hot codes (reidkit.data.video.AttributeSchema).
As in the reference, every group's BCE is a mean over its elements and the groups are summed.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def attribute_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits, mean over all elements, of one group's logits [B, d] against targets [B, d] in {0, 1}."""
    if logits.dim() != 2 or logits.shape != targets.shape:
        raise ValueError(f"attribute logits and targets must both be [B, d]; got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    # Under autocast the logits may be half precision: the loss is computed in float32 for stability.
    return F.binary_cross_entropy_with_logits(logits.float(), targets.to(torch.float32))


class AttributeBCELoss(nn.Module):
    """Sum over attribute groups of attribute_bce(logits[group], targets[group])."""

    def forward(self, logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = sorted(set(logits) - set(targets))
        if missing:
            raise KeyError(f"no attribute targets for group(s) {missing}; targets hold {sorted(targets)}")
        if not logits:
            raise ValueError("AttributeBCELoss got no attribute groups")
        return torch.stack([attribute_bce(logits[g], targets[g]) for g in logits]).sum()
