"""The training criterion assembled from the model's declaration (`loss_spec`, `loss_defaults`).

    criterion = build_criterion(model)                 # Top-DB-Net: triplet + CE on global, drop, reg
    loss, parts = criterion(model(images), pids)       # parts: {"global/triplet": 0.31, ...}
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.losses import cross_entropy, triplet  # noqa: F401  (registration)
from reidkit.losses.base import LOSSES, LossOptions


class Criterion(nn.Module):
    """Weighted sum of (stream, loss) terms. forward(output, pids) -> (total, {"stream/loss": value})."""

    def __init__(self, terms: list[tuple[str, str, nn.Module, float]]) -> None:
        super().__init__()
        self.keys = [(stream, name) for stream, name, _, _ in terms]
        self.weights = [w for *_, w in terms]
        self.losses = nn.ModuleList(loss for _, _, loss, _ in terms)

    def forward(self, output: Any, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        streams = getattr(output, "streams", None)
        if streams is None:
            raise TypeError(
                f"the criterion expects a train-mode ModelOutput, got {type(output).__name__} (model in eval mode?)"
            )
        total = None
        parts: dict[str, float] = {}
        for (stream, name), weight, loss in zip(self.keys, self.weights, self.losses):
            if stream not in streams:
                raise KeyError(f"the model output has no stream {stream!r} (streams: {list(streams)})")
            value = loss(getattr(streams[stream], loss.takes), pids)
            parts[f"{stream}/{name}"] = float(value.detach())
            total = weight * value if total is None else total + weight * value
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{s}/{n} x{w:g}" for (s, n), w in zip(self.keys, self.weights))


def build_criterion(
    model: nn.Module,
    *,
    weights: Mapping[str, float] | None = None,
    **options: Any,
) -> Criterion:
    """Criterion for `model` from its class's `loss_spec` (stream -> loss names). `options` override the
    LossOptions fields (margin, soft_margin, metric, label_smooth) after the model's `loss_defaults`;
    `weights` maps "stream/loss" to a weight (default 1)."""
    target = getattr(model, "module", model)
    spec = getattr(target, "loss_spec", None)
    if not spec:
        raise ConfigError(f"{type(target).__name__} declares no loss_spec (stream -> losses); cannot build a criterion")
    fields = {f.name for f in dataclasses.fields(LossOptions)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown loss option(s) {unknown}; accepted: {sorted(fields)}")
    merged = {**getattr(target, "loss_defaults", {}), **{k: v for k, v in options.items() if v is not None}}
    loss_options = LossOptions(**merged)
    weights = dict(weights or {})
    declared = [f"{stream}/{name}" for stream, names in spec.items() for name in names]
    stray = sorted(set(weights) - set(declared))
    if stray:
        raise ConfigError(f"loss weights for {stray} match no declared term; terms: {declared}")
    terms = [
        (stream, name, LOSSES.get(name)(loss_options), float(weights.get(f"{stream}/{name}", 1.0)))
        for stream, names in spec.items()
        for name in names
    ]
    return Criterion(terms)
