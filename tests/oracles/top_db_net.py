"""An independent re-statement of the reference Top-DB-Net / BDB forward (docs/specs/top-db-net.md sections 2-5), with
the reference's attribute names, for checking that reidkit models loaded with reference weights compute the same
thing. Written from the spec: per-sample Python loop for the Top DropBlock mask, the reference's
`base` Sequential, its BatchDrop random draws."""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck


def reference_base(arch: str) -> nn.Sequential:
    net = getattr(torchvision.models, arch)(weights=None)
    block = net.layer4[0]
    for m in block.modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.stride = (1, 1)
    return nn.Sequential(*list(net.children())[:-2])


class _BatchDrop(nn.Module):
    def __init__(self, channels: int, double: bool) -> None:
        super().__init__()
        planes = channels // 4
        if double:
            self.drop_batch_bottleneck = nn.Sequential(Bottleneck(channels, planes), Bottleneck(channels, planes))
        else:
            self.drop_batch_bottleneck = Bottleneck(channels, planes)


def loop_top_mask(x: torch.Tensor, ratio: float = 0.33) -> torch.Tensor:
    b, c, h, w = x.shape
    rh = round(ratio * h)
    act = F.normalize((x**2).sum(1).view(b, h * w), p=2, dim=1).view(b, h, w)
    ind = torch.argsort(act.max(2)[0], 1)[:, -rh:]
    mask = torch.ones(b, c, h, w)
    for i in range(b):
        for row in ind[i].tolist():
            mask[i, :, row, :] = 0
    return mask


def random_block_mask(x: torch.Tensor, h_ratio: float = 0.33, w_ratio: float = 1.0) -> torch.Tensor:
    h, w = x.shape[-2:]
    rh, rw = round(h_ratio * h), round(w_ratio * w)
    sx = random.randint(0, h - rh)
    sy = random.randint(0, w - rw)
    mask = torch.ones_like(x)
    mask[:, :, sx : sx + rh, sy : sy + rw] = 0
    return mask


class ReferenceTopBDNet(nn.Module):
    """neck / double_bottleneck / drop_bottleneck_features as the reference's TopBDNet flags."""

    def __init__(self, num_classes: int, arch: str, channels: int, neck: bool, double: bool, third: bool) -> None:
        super().__init__()
        self.neck, self.third = neck, third
        if neck:
            self.bottleneck_global = nn.BatchNorm1d(512)
            self.bottleneck_db = nn.BatchNorm1d(1024)
            self.bottleneck_drop_bottleneck_features = nn.BatchNorm1d(channels)
        self.reduction_global = nn.Sequential(nn.Conv2d(channels, 512, 1), nn.BatchNorm2d(512), nn.ReLU())
        self.reduction_db = nn.Sequential(nn.Linear(channels, 1024), nn.BatchNorm1d(1024), nn.ReLU())
        self.classifier_global = nn.Linear(512, num_classes)
        self.classifier_db = nn.Linear(1024, num_classes)
        self.batch_drop = _BatchDrop(channels, double)
        if third:
            self.classifier_drop_bottleneck = nn.Linear(channels, num_classes)
        self.base = reference_base(arch)

    def forward(self, x: torch.Tensor, drop_top: bool) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.base(x)
        features = self.batch_drop.drop_batch_bottleneck(x)
        if self.training:
            drop_x = features * (loop_top_mask(features) if drop_top else random_block_mask(features))
        else:
            drop_x = features
        if self.third:
            t_b = F.adaptive_avg_pool2d(features, 1).flatten(1)
            y_b = self.classifier_drop_bottleneck(self.bottleneck_drop_bottleneck_features(t_b))
        t_x = self.reduction_global(F.adaptive_avg_pool2d(x, 1)).flatten(1)
        x_x = self.bottleneck_global(t_x) if self.neck else t_x
        t_d = self.reduction_db(F.adaptive_max_pool2d(drop_x, 1).flatten(1))
        x_d = self.bottleneck_db(t_d) if self.neck else t_d
        if not self.training:
            return torch.cat((x_x, x_d), 1)
        out = (self.classifier_global(x_x), t_x, self.classifier_db(x_d), t_d)
        return out + (y_b, t_b) if self.third else out


class ReferenceNoDropNet(nn.Module):
    def __init__(self, num_classes: int, arch: str, channels: int) -> None:
        super().__init__()
        planes = channels // 4
        self.bottleneck_global = nn.BatchNorm1d(512)
        self.bottleneck_regularization = nn.BatchNorm1d(channels)
        self.reduction_global = nn.Sequential(nn.Conv2d(channels, 512, 1), nn.BatchNorm2d(512), nn.ReLU())
        self.reduction_regularization = nn.Sequential(Bottleneck(channels, planes), Bottleneck(channels, planes))
        self.classifier_global = nn.Linear(512, num_classes)
        self.classifier_regularization = nn.Linear(channels, num_classes)
        self.base = reference_base(arch)

    def forward(self, x: torch.Tensor, drop_top: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.base(x)
        t_r = F.adaptive_avg_pool2d(self.reduction_regularization(x), 1).flatten(1)
        x_r = self.bottleneck_regularization(t_r)
        t_x = self.reduction_global(F.adaptive_avg_pool2d(x, 1)).flatten(1)
        x_x = self.bottleneck_global(t_x)
        if not self.training:
            return torch.cat((x_x, x_r), 1)
        return self.classifier_global(x_x), t_x, self.classifier_regularization(x_r), t_r


def build_reference(variant: str, num_classes: int, arch: str, channels: int) -> nn.Module:
    if variant == "top_db_net":
        return ReferenceTopBDNet(num_classes, arch, channels, neck=True, double=True, third=True)
    if variant == "top_db_net_no_reg":
        return ReferenceTopBDNet(num_classes, arch, channels, neck=True, double=True, third=False)
    if variant == "bdb":
        return ReferenceTopBDNet(num_classes, arch, channels, neck=False, double=False, third=False)
    return ReferenceNoDropNet(num_classes, arch, channels)
