"""Attribute-aware Identity-hard Triplet Loss (AITL, arXiv 2006.07597) and the ASTA training criterion.

AITL for one attribute group: D_A = Euclidean distance between the samples' predicted attribute logits,
D_f = 1 - cos between their re-ID features. For anchor i, among the samples of the same identity,
p+ is the one with the largest D_A and p- the one with the smallest D_A;
loss = mean_i max(0, D_f(i, p+) - D_f(i, p-) + m). The choice of p+/p- carries no gradient.

`include_self`: the reference implementation counts i among its own candidates, so p- is almost always i
itself (D_A(i, i) ~ 0) and the loss reduces to pulling in the attribute-farthest positive. reidkit's default
(False) follows the paper: p- is another sample of the identity, and anchors without one are left out.

The ASTA criterion (docs/specs/video-aitl-asta.md section 2):
    L = L_ID + (L_BH + sum_g L_AITL(g)) / (1 + G) + L_attr
with L_ID the label-smoothed cross-entropy on the BNNeck logits, L_BH the cosine batch-hard triplet on the
pre-BN feature, G the attribute groups (ID-irrelevant, ID-relevant) and L_attr their BCE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from reidkit.errors import ConfigError
from reidkit.losses.attribute import AttributeBCELoss
from reidkit.losses.criterion import build_criterion
from reidkit.losses.miners import pairwise_distance


@dataclass(frozen=True)
class AttributeTriplets:
    """Per anchor: the attribute-farthest positive, the attribute-closest positive, and whether the anchor
    has any candidate at all (with include_self=False an identity seen once in the batch has none)."""

    positive: torch.Tensor
    negative: torch.Tensor
    valid: torch.Tensor


def attribute_hard_mining(attribute_logits: torch.Tensor, pids: torch.Tensor, include_self: bool) -> AttributeTriplets:
    """Choose p+ (largest attribute distance) and p- (smallest) among each anchor's same-identity samples."""
    n = attribute_logits.shape[0]
    if attribute_logits.dim() != 2 or pids.shape != (n,):
        raise ValueError(f"expected attribute logits [N, d] and pids [N], got {tuple(attribute_logits.shape)} "
                         f"and {tuple(pids.shape)}")
    with torch.no_grad():
        attr_dist = pairwise_distance(attribute_logits.detach().float(), "euclidean")
        candidates = pids.unsqueeze(0) == pids.unsqueeze(1)
        if not include_self:
            candidates &= ~torch.eye(n, dtype=torch.bool, device=pids.device)
        positive = attr_dist.masked_fill(~candidates, float("-inf")).argmax(1)
        negative = attr_dist.masked_fill(~candidates, float("inf")).argmin(1)
        return AttributeTriplets(positive, negative, candidates.any(1))


class AITLLoss(nn.Module):
    """forward(features [N, D], attribute_logits [N, d], pids [N]) -> scalar.

    margin: m (0 in the paper and the reference); include_self: see the module docstring."""

    def __init__(self, margin: float = 0.0, include_self: bool = False) -> None:
        super().__init__()
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
            raise ConfigError(f"AITL margin must be a number >= 0, got {margin!r}")
        if not isinstance(include_self, bool):
            raise ConfigError(f"AITL include_self must be true or false, got {include_self!r}")
        self.margin = float(margin)
        self.include_self = include_self

    def forward(self, features: torch.Tensor, attribute_logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[0] != attribute_logits.shape[0]:
            raise ValueError(f"expected features [N, D] matching attribute logits [N, d], got "
                             f"{tuple(features.shape)} and {tuple(attribute_logits.shape)}")
        mined = attribute_hard_mining(attribute_logits, pids, self.include_self)
        dist = pairwise_distance(features.float(), "cosine")
        rows = torch.arange(dist.shape[0], device=dist.device)
        gap = dist[rows, mined.positive] - dist[rows, mined.negative] + self.margin
        losses = F.relu(gap)[mined.valid]
        # No anchor with a candidate: a zero that keeps the graph, so backward() still works.
        return losses.mean() if losses.numel() else dist.sum() * 0.0

    def extra_repr(self) -> str:
        return f"margin={self.margin}, include_self={self.include_self}"


class AITLCriterion(nn.Module):
    """The ASTA criterion. forward(output, pids, attributes) -> (loss, parts).

    `output`: the train-mode ModelOutput; its "global" stream carries the id logits and the pre-BN feature g,
    and each attribute stream ("attr_<group>") carries that group's attribute logits (its features are g).
    `attributes`: group -> one-hot targets [B, d_group] (the batch's "attributes" entry).
    The id terms come from build_criterion(model, weights, **id_options) (the model's own loss declaration:
    cross-entropy and a cosine batch-hard triplet); this class adds AITL per group and the attribute BCE,
    weighted as in the spec.
    """

    # Batch entries the training step must pass as keyword arguments, besides the output and the pids.
    batch_targets = ("attributes",)

    def __init__(self, model: nn.Module, *, include_self: bool = False, aitl_margin: float = 0.0,
                 weights: Mapping[str, float] | None = None, **id_options: Any) -> None:
        super().__init__()
        target = getattr(model, "module", model)
        groups = tuple(getattr(target, "attribute_groups", ()))
        if not groups:
            raise ConfigError(f"{type(target).__name__} has no attribute streams (attribute_groups); "
                              "the AITL criterion needs a model with attribute heads such as 'asta'")
        self.groups = groups
        share = 1.0 / (1 + len(groups))
        # `weights` may override the spec's 1 / (1 + G) share of the triplet term, like any other term weight.
        self.identity = build_criterion(model, weights={"global/triplet": share, **(weights or {})}, **id_options)
        self.aitl = AITLLoss(aitl_margin, include_self)
        self.aitl_weight = share
        self.bce = AttributeBCELoss()

    def forward(self, output: Any, pids: torch.Tensor,
                attributes: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if attributes is None:
            raise ValueError("the AITL criterion needs the batch's attribute targets (group -> one-hot [B, d]); "
                             "train on a video dataset with attributes (MARS, DukeMTMC-VideoReID, synthetic_video)")
        total, parts = self.identity(output, pids)
        features = output["global"].features
        logits = {group: output[f"attr_{group}"].logits for group in self.groups}
        for group, group_logits in logits.items():
            value = self.aitl(features, group_logits, pids)
            parts[f"attr_{group}/aitl"] = float(value.detach())
            total = total + self.aitl_weight * value
        attr_loss = self.bce(logits, attributes)
        parts["attributes/bce"] = float(attr_loss.detach())
        return total + attr_loss, parts

    def extra_repr(self) -> str:
        return f"groups={list(self.groups)}, aitl_weight={self.aitl_weight:g}"


def build_model_criterion(model: nn.Module, *, include_self: bool = False, **options: Any) -> nn.Module:
    """The criterion `model` trains with: the AITL criterion for models with attribute streams (asta), else
    build_criterion(model, **options). `options`: weights and the LossOptions fields, as for build_criterion."""
    if getattr(getattr(model, "module", model), "attribute_groups", ()):
        return AITLCriterion(model, include_self=include_self, **options)
    return build_criterion(model, **options)
