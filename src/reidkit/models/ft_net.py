"""`ft_net`: the AICity 2020 (Baidu-UTS) baseline (docs/specs/vehicle-aicity.md section 1): backbone -> global pooling
-> ClassBlock.

ClassBlock: Linear(C -> 512) -> BN1d(512) -> Dropout(p, if p > 0) -> Linear(512 -> num_classes). The 512-d BN
output is the test feature. Module names follow the reference (`classifier.add_block.N`,
`classifier.classifier.0`, ResNet layers under `model.`), so its checkpoints load by name.
"""
from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models.backbones import build_backbone
from reidkit.models.base import MODELS, ReidModel
from reidkit.models.heads import check_dim
from reidkit.models.outputs import ModelOutput, Stream

POOLS = ("avg", "avg+max")


class ClassBlock(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, droprate: float = 0.5, bottleneck: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, bottleneck), nn.BatchNorm1d(bottleneck)]
        if droprate > 0:
            layers.append(nn.Dropout(p=droprate))
        self.add_block = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(bottleneck, num_classes))
        # The reference's initialisation (weights_init_kaiming / weights_init_classifier).
        nn.init.kaiming_normal_(self.add_block[0].weight, a=0, mode="fan_out")
        nn.init.zeros_(self.add_block[0].bias)
        nn.init.normal_(self.add_block[1].weight, 1.0, 0.02)
        nn.init.zeros_(self.add_block[1].bias)
        nn.init.normal_(self.classifier[0].weight, std=0.001)
        nn.init.zeros_(self.classifier[0].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pre-BN bottleneck, BN feature, logits)."""
        reduced = self.add_block[0](x)
        feature = self.add_block[1:](reduced)
        return reduced, feature, self.classifier(feature)


@MODELS.register("ft_net")
class FtNet(ReidModel):
    """Options: last_stride (1), pool ('avg' | 'avg+max'), droprate (0.5), bottleneck (512)."""

    loss_spec: ClassVar[dict[str, tuple[str, ...]]] = {"global": ("ce",)}  # the released recipe: CE only
    classifier_names: ClassVar[tuple[str, ...]] = ("classifier.classifier",)
    # The reference keeps the whole torchvision ResNet under `model.`; its unused `fc` is skipped.
    reference_prefixes: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (f"model.{name}.", f"backbone.{name}.") for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"))
    reference_ignored: ClassVar[tuple[str, ...]] = ("model.fc.",)

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: str | os.PathLike | bool | None = None,
                 *, last_stride: int = 1, pool: str = "avg", droprate: float = 0.5, bottleneck: int = 512) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"ft_net: pool={pool!r}, expected one of {POOLS}")
        if isinstance(droprate, bool) or not 0 <= droprate < 1:
            raise ConfigError(f"ft_net: droprate={droprate!r}, expected 0 <= droprate < 1")
        self.num_classes = check_dim(num_classes, "num_classes")
        check_dim(bottleneck, "bottleneck")
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        self.pool = pool
        width = self.backbone.out_channels * (2 if pool == "avg+max" else 1)
        self.classifier = ClassBlock(width, num_classes, droprate, bottleneck)
        self.feature_dim = bottleneck

    def reference_key_map(self) -> list[tuple[str, str]]:
        return list(self.reference_prefixes)  # not the Top-DB-Net backbone names (`base.N.`)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.backbone(x)
        avg = fmap.mean(dim=(2, 3))
        return torch.cat([avg, fmap.amax(dim=(2, 3))], dim=1) if self.pool == "avg+max" else avg

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        reduced, feature, logits = self.classifier(self.pooled(x))
        if not self.training:
            return feature
        return ModelOutput({"global": Stream(logits=logits, features=reduced)})
