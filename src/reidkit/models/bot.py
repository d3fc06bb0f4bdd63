"""The "bag of tricks" baseline (Luo et al. 2019): backbone with last stride 1, global average pooling,
BNNeck. Metric losses on the pooled feature, cross-entropy on the classifier after the neck."""
from __future__ import annotations

import os

import torch
from torch import nn

from reidkit.models.backbones import build_backbone
from reidkit.models.base import MODELS, ReidModel, init_head_params
from reidkit.models.heads import check_dim
from reidkit.models.outputs import ModelOutput, Stream


@MODELS.register("bot")
class BoT(ReidModel):
    """Eval: the post-BN pooled feature, C-d (2048 for ResNet-50)."""

    loss_spec = {"global": ("triplet", "ce")}
    classifier_names = ("classifier",)

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: str | os.PathLike | bool | None = None,
        *,
        last_stride: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = check_dim(num_classes, "num_classes")
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        c = self.backbone.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(c)
        # BNNeck: a shift-free BN and a bias-free classifier, so the classifier's hyperplanes pass through the
        # origin of the normalised feature space.
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(c, num_classes, bias=False)
        init_head_params([self.neck, self.classifier])
        self.feature_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        t_global = self.avgpool(self.backbone(x)).flatten(1)
        f_global = self.neck(t_global)
        if not self.training:
            return f_global
        return ModelOutput({"global": Stream(self.classifier(f_global), t_global)})
