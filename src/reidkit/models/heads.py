"""Head layers shared by the Top-DB-Net family and BDB, laid out exactly as the reference builds them."""
from __future__ import annotations

from torch import nn
from torchvision.models.resnet import Bottleneck

from reidkit.errors import ConfigError


def check_dim(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def global_reduction(channels: int, dim: int) -> nn.Sequential:
    """Conv1x1 (with bias) + BN2d + ReLU, applied to the average-pooled map [B, C, 1, 1]."""
    return nn.Sequential(nn.Conv2d(channels, dim, 1), nn.BatchNorm2d(dim), nn.ReLU())


def drop_reduction(channels: int, dim: int) -> nn.Sequential:
    """Linear + BN1d + ReLU, applied to the max-pooled drop-stream vector [B, C]."""
    return nn.Sequential(nn.Linear(channels, dim), nn.BatchNorm1d(dim), nn.ReLU())


def residual_bottleneck(channels: int) -> Bottleneck:
    """torchvision Bottleneck(C, C/4) with identity shortcut: C -> C, same size (ends in a ReLU)."""
    if channels % 4:
        raise ConfigError(f"the drop-stream bottleneck needs a channel count divisible by 4, got {channels}")
    return Bottleneck(channels, channels // Bottleneck.expansion)
