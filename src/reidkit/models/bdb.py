"""Batch DropBlock network (BDB, docs/specs/top-db-net.md section 5): global branch + one bottleneck with a random Batch
DropBlock shared by the batch, no BN neck. Mirrors the reference `bdnet` layer for layer."""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from reidkit.models.backbones import build_backbone
from reidkit.models.base import MODELS, ReidModel, init_head_params
from reidkit.models.drop_blocks import BatchDropBlock
from reidkit.models.heads import check_dim, drop_reduction, global_reduction, residual_bottleneck
from reidkit.models.outputs import ModelOutput, Stream
from reidkit.registry import Registry

# How the new layers start (model option `head_init`); each takes the built model and initialises its heads.
HEAD_INITS: Registry[Callable[["BDBNet"], None]] = Registry("bdb head init")


def kaiming_head_params(modules: list[nn.Module]) -> None:
    """BDB's own `weights_init_kaiming`: Linear Kaiming-normal (fan_out), conv Kaiming-normal (fan_in), BN weight
    N(1, 0.02); biases 0."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.0)
            elif isinstance(m, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.0)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.constant_(m.bias, 0.0)


@HEAD_INITS.register("bdb")
def _bdb_init(model: "BDBNet") -> None:
    # BDB applies weights_init_kaiming to the reductions and classifiers only: its drop-branch Bottleneck keeps
    # PyTorch's default initialisation.
    kaiming_head_params([model.global_reduction, model.global_classifier, model.drop_reduction, model.drop_classifier])


@HEAD_INITS.register("top_db_net")
def _top_db_net_init(model: "BDBNet") -> None:
    # The Top-DB-Net repository's `bdnet` initialises every new layer, bottleneck included, as its other models.
    init_head_params(m for n, m in model.named_children() if n != "backbone")


@MODELS.register("bdb")
class BDBNet(ReidModel):
    """Eval: cat(global 512, drop 1024), both post-ReLU (no neck). `head_init`: "bdb" (BDB's weights_init_kaiming) or
    "top_db_net" (the Top-DB-Net repository's `bdnet`, docs/specs/top-db-net.md section 1)."""

    loss_spec = {"global": ("triplet", "ce"), "drop": ("triplet", "ce")}
    # BDB's own code trains with the soft-margin triplet (docs/specs/top-db-net.md section 6).
    loss_defaults = {"soft_margin": True}
    classifier_names = ("global_classifier", "drop_classifier")
    reference_prefixes = (
        ("reduction_global.", "global_reduction."),
        ("classifier_global.", "global_classifier."),
        ("batch_drop.drop_batch_bottleneck.", "bottleneck."),
        ("reduction_db.", "drop_reduction."),
        ("classifier_db.", "drop_classifier."),
    )

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: str | os.PathLike | bool | None = None,
        *,
        last_stride: int = 1,
        drop_height_ratio: float = 0.33,
        drop_width_ratio: float = 1.0,
        global_dim: int = 512,
        drop_dim: int = 1024,
        head_init: str = "bdb",
    ) -> None:
        super().__init__()
        self.num_classes = check_dim(num_classes, "num_classes")
        check_dim(global_dim, "global_dim")
        check_dim(drop_dim, "drop_dim")
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        c = self.backbone.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.maxpool = nn.AdaptiveMaxPool2d(1)
        self.global_reduction = global_reduction(c, global_dim)
        self.global_classifier = nn.Linear(global_dim, num_classes)
        self.bottleneck = residual_bottleneck(c)
        self.batch_drop = BatchDropBlock(drop_height_ratio, drop_width_ratio)
        self.drop_reduction = drop_reduction(c, drop_dim)
        self.drop_classifier = nn.Linear(drop_dim, num_classes)
        HEAD_INITS.get(head_init)(self)
        self.feature_dim = global_dim + drop_dim

    @torch.no_grad()
    def drop_mask(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, h, w], 1 = kept: a random batch block, as drawn in training."""
        return self.batch_drop.mask(self.bottleneck(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        fmap = self.backbone(x)
        dropped = self.batch_drop(self.bottleneck(fmap))
        t_global = self.global_reduction(self.avgpool(fmap)).flatten(1)
        t_drop = self.drop_reduction(self.maxpool(dropped).flatten(1))
        if not self.training:
            return torch.cat((t_global, t_drop), dim=1)
        return ModelOutput(
            {
                "global": Stream(self.global_classifier(t_global), t_global),
                "drop": Stream(self.drop_classifier(t_drop), t_drop),
            }
        )
