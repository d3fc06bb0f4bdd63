"""Top-DB-Net (docs/specs/top-db-net.md sections 2-5): `top_db_net` (global + Top DropBlock + regularization streams),
`top_db_net_no_reg` and `top_db_net_no_drop` (the paper's ablations).

The module layout mirrors the reference implementation one to one (same layers, same order of operations),
so its checkpoints load through `reference_prefixes` and give the same outputs.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models.backbones import build_backbone
from reidkit.models.base import MODELS, ReidModel, init_head_params
from reidkit.models.drop_blocks import BatchDropBlock, TopDropBlock
from reidkit.models.heads import check_dim, drop_reduction, global_reduction, residual_bottleneck
from reidkit.models.outputs import ModelOutput, Stream

_GLOBAL_REFERENCE = (
    ("reduction_global.", "global_reduction."),
    ("bottleneck_global.", "global_neck."),
    ("classifier_global.", "global_classifier."),
)


@MODELS.register("top_db_net")
class TopDBNet(ReidModel):
    """Reference `top_bdnet_neck_botdropfeat_doubot`. Eval: cat(post-BN global 512, post-BN drop 1024)."""

    with_reg = True
    loss_spec = {"global": ("triplet", "ce"), "drop": ("triplet", "ce"), "reg": ("triplet", "ce")}
    classifier_names = ("global_classifier", "drop_classifier", "reg_classifier")
    reference_prefixes = _GLOBAL_REFERENCE + (
        ("batch_drop.drop_batch_bottleneck.", "bottleneck."),
        ("reduction_db.", "drop_reduction."),
        ("bottleneck_db.", "drop_neck."),
        ("classifier_db.", "drop_classifier."),
        ("bottleneck_drop_bottleneck_features.", "reg_neck."),
        ("classifier_drop_bottleneck.", "reg_classifier."),
    )

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: str | os.PathLike | bool | None = None,
        *,
        last_stride: int = 1,
        top_drop_epoch: int | None = 0,
        drop_height_ratio: float = 0.33,
        drop_width_ratio: float = 1.0,
        row_score: str = "max",
        global_dim: int = 512,
        drop_dim: int = 1024,
    ) -> None:
        super().__init__()
        self.num_classes = check_dim(num_classes, "num_classes")
        check_dim(global_dim, "global_dim")
        check_dim(drop_dim, "drop_dim")
        if top_drop_epoch is not None and (isinstance(top_drop_epoch, bool) or not isinstance(top_drop_epoch, int)):
            raise ConfigError(f"top_drop_epoch must be an int or None, got {top_drop_epoch!r}")
        # The reference's -1 means "never": random Batch DropBlock for the whole run.
        self.top_drop_epoch = None if top_drop_epoch is None or top_drop_epoch < 0 else top_drop_epoch
        self.epoch = 0
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        c = self.backbone.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.maxpool = nn.AdaptiveMaxPool2d(1)
        self.global_reduction = global_reduction(c, global_dim)
        self.global_neck = nn.BatchNorm1d(global_dim)
        self.global_classifier = nn.Linear(global_dim, num_classes)
        self.bottleneck = nn.Sequential(residual_bottleneck(c), residual_bottleneck(c))
        self.top_drop = TopDropBlock(drop_height_ratio, row_score)
        self.batch_drop = BatchDropBlock(drop_height_ratio, drop_width_ratio)
        self.drop_reduction = drop_reduction(c, drop_dim)
        self.drop_neck = nn.BatchNorm1d(drop_dim)
        self.drop_classifier = nn.Linear(drop_dim, num_classes)
        heads = [m for n, m in self.named_children() if n != "backbone"]
        if self.with_reg:
            self.reg_neck = nn.BatchNorm1d(c)
            self.reg_classifier = nn.Linear(c, num_classes)
            heads += [self.reg_neck, self.reg_classifier]
        init_head_params(heads)
        self.feature_dim = global_dim + drop_dim

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def drop_top(self) -> bool:
        """Top DropBlock from the 1-based epoch `top_drop_epoch` on, i.e. epoch index + 1 >= top_drop_epoch
        (the reference's test); random Batch DropBlock before."""
        return self.top_drop_epoch is not None and self.epoch + 1 >= self.top_drop_epoch

    def _drop_block(self) -> nn.Module:
        return self.top_drop if self.drop_top else self.batch_drop

    @torch.no_grad()
    def drop_mask(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, h, w], 1 = kept: the mask the drop stream applies in training at the current epoch."""
        return self._drop_block().mask(self.bottleneck(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        fmap = self.backbone(x)
        shared = self.bottleneck(fmap)
        t_global = self.global_reduction(self.avgpool(fmap)).flatten(1)
        f_global = self.global_neck(t_global)
        dropped = self._drop_block()(shared) if self.training else shared
        t_drop = self.drop_reduction(self.maxpool(dropped).flatten(1))
        f_drop = self.drop_neck(t_drop)
        if not self.training:
            return torch.cat((f_global, f_drop), dim=1)
        streams = {
            "global": Stream(self.global_classifier(f_global), t_global),
            "drop": Stream(self.drop_classifier(f_drop), t_drop),
        }
        if self.with_reg:
            # The regularization stream sees the bottleneck output before the drop.
            t_reg = self.avgpool(shared).flatten(1)
            streams["reg"] = Stream(self.reg_classifier(self.reg_neck(t_reg)), t_reg)
        return ModelOutput(streams)


@MODELS.register("top_db_net_no_reg")
class TopDBNetNoReg(TopDBNet):
    """Reference `top_bdnet_neck_doubot`: no regularization stream. Eval feature as top_db_net (1536)."""

    with_reg = False
    loss_spec = {"global": ("triplet", "ce"), "drop": ("triplet", "ce")}
    classifier_names = ("global_classifier", "drop_classifier")
    reference_prefixes = tuple(p for p in TopDBNet.reference_prefixes if not p[1].startswith("reg_"))
    # The reference builds this BN for every neck model but never calls it without the third stream.
    reference_ignored = ("bottleneck_drop_bottleneck_features.",)


@MODELS.register("top_db_net_no_drop")
class TopDBNetNoDrop(ReidModel):
    """Reference `nodropnet_neck`: global + regularization streams (the shared double bottleneck, average
    pooled, no drop). Eval: cat(post-BN global 512, post-BN regularization C) = 512 + C."""

    loss_spec = {"global": ("triplet", "ce"), "reg": ("triplet", "ce")}
    classifier_names = ("global_classifier", "reg_classifier")
    reference_prefixes = _GLOBAL_REFERENCE + (
        ("reduction_regularization.", "bottleneck."),
        ("bottleneck_regularization.", "reg_neck."),
        ("classifier_regularization.", "reg_classifier."),
    )

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: str | os.PathLike | bool | None = None,
        *,
        last_stride: int = 1,
        global_dim: int = 512,
    ) -> None:
        super().__init__()
        self.num_classes = check_dim(num_classes, "num_classes")
        check_dim(global_dim, "global_dim")
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        c = self.backbone.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.global_reduction = global_reduction(c, global_dim)
        self.global_neck = nn.BatchNorm1d(global_dim)
        self.global_classifier = nn.Linear(global_dim, num_classes)
        self.bottleneck = nn.Sequential(residual_bottleneck(c), residual_bottleneck(c))
        self.reg_neck = nn.BatchNorm1d(c)
        self.reg_classifier = nn.Linear(c, num_classes)
        init_head_params(m for n, m in self.named_children() if n != "backbone")
        self.feature_dim = global_dim + c

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        fmap = self.backbone(x)
        t_reg = self.avgpool(self.bottleneck(fmap)).flatten(1)
        f_reg = self.reg_neck(t_reg)
        t_global = self.global_reduction(self.avgpool(fmap)).flatten(1)
        f_global = self.global_neck(t_global)
        if not self.training:
            return torch.cat((f_global, f_reg), dim=1)
        return ModelOutput(
            {
                "global": Stream(self.global_classifier(f_global), t_global),
                "reg": Stream(self.reg_classifier(f_reg), t_reg),
            }
        )
