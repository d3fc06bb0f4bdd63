"""torchvision backbones cut before their pooling/classifier, with a last-stride option.

    backbone = build_backbone("resnet50", last_stride=1, pretrained="imagenet")
    backbone(x).shape  # [B, backbone.out_channels, H/16, W/16] with last stride 1

Module names follow torchvision's (conv1, bn1, layer1.. / features.N), so torchvision-format state dicts load
as they are. `pretrained`: see reidkit.models.pretrained.load_pretrained_backbone.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
import torchvision
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models.pretrained import load_pretrained_backbone
from reidkit.registry import Registry

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")


def _check_last_stride(last_stride: int) -> int:
    if isinstance(last_stride, bool) or last_stride not in (1, 2):
        raise ConfigError(f"last_stride must be 1 or 2, got {last_stride!r}")
    return int(last_stride)


def _check_stem_relu(stem_relu: bool) -> bool:
    if not isinstance(stem_relu, bool):
        raise ConfigError(f"stem_relu must be true or false, got {stem_relu!r}")
    return stem_relu


def _set_stride(block: nn.Module, stride: int) -> None:
    """Give every strided conv of `block` (main path and shortcut) the new stride."""
    for m in block.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (stride, stride)
    if hasattr(block, "stride"):
        block.stride = stride


class ResNetBackbone(nn.Module):
    """conv1 .. layer4 of a torchvision ResNet; last_stride sets the stride of layer4's first block."""

    # The reference model holds these as nn.Sequential(*children[:-2]): base.0 conv1, base.1 bn1,
    # base.2 relu, base.3 maxpool, base.4..7 layer1..4.
    reference_prefixes = (
        ("base.0.", "conv1."),
        ("base.1.", "bn1."),
        ("base.4.", "layer1."),
        ("base.5.", "layer2."),
        ("base.6.", "layer3."),
        ("base.7.", "layer4."),
    )
    pretrained_ignored = ("fc.",)

    def __init__(self, arch: str, last_stride: int = 1, stem_relu: bool = True) -> None:
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        if not _check_stem_relu(stem_relu):
            # The AITL reference's ResNet (from reid-strong-baseline) goes from the stem BN straight to the max pool.
            self.relu = nn.Identity()
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        _set_stride(self.layer4[0], _check_last_stride(last_stride))
        self.out_channels: int = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 `features` (1280 channels); last_stride sets the stride of the last
    downsampling stage (features[14], the first 160-channel block)."""

    reference_prefixes = ()
    pretrained_ignored = ("classifier.",)

    def __init__(self, arch: str = "mobilenet_v2", last_stride: int = 1, stem_relu: bool = True) -> None:
        super().__init__()
        if not _check_stem_relu(stem_relu):
            raise ConfigError("stem_relu=false removes the ReLU after a ResNet's stem BN (the AITL reference's "
                              f"ResNet); {arch} has no such stem: use a resnet backbone or stem_relu=true")
        net = torchvision.models.mobilenet_v2(weights=None)
        self.arch = arch
        self.features = net.features
        strided = [m for m in self.features if getattr(m, "stride", 1) == 2]
        _set_stride(strided[-1], _check_last_stride(last_stride))
        self.out_channels: int = net.last_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _register(name: str, cls: type[nn.Module]) -> None:
    def build(last_stride: int = 1, stem_relu: bool = True) -> nn.Module:
        return cls(name, last_stride=last_stride, stem_relu=stem_relu)

    build.__name__ = name
    BACKBONES.register(name)(build)


for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    _register(_name, ResNetBackbone)
_register("mobilenet_v2", MobileNetV2Backbone)


def build_backbone(
    name: str, *, last_stride: int = 1, pretrained: str | os.PathLike | bool | None = None, stem_relu: bool = True
) -> nn.Module:
    """Backbone `name` (see BACKBONES.names()) with `.out_channels`; `pretrained` as in
    reidkit.models.pretrained.load_pretrained_backbone (None: torchvision's random initialisation);
    `stem_relu=False` (ResNets only) drops the ReLU after the stem BN, as the AITL reference's ResNet."""
    backbone = BACKBONES.get(name)(last_stride=last_stride, stem_relu=stem_relu)
    if pretrained not in (None, False):
        load_pretrained_backbone(backbone, pretrained)
    return backbone
