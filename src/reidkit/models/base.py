"""Shared pieces of every reidkit model: the MODELS registry, the ReidModel base class (the contract the
trainer, criterion, checkpoint loader and visualiser rely on) and the head initialisation."""
from __future__ import annotations

from typing import Callable, ClassVar, Iterable

import torch
from torch import nn

from reidkit.registry import Registry

MODELS: Registry[Callable[..., "ReidModel"]] = Registry("model")


class ReidModel(nn.Module):
    """Base class. Subclasses set `backbone`, `feature_dim` and the class-level declarations below.

    - `loss_spec`: stream name -> losses applied to it (names in reidkit.losses.LOSSES); read by build_criterion.
    - `loss_defaults`: option overrides the model wants by default (e.g. BDB's soft-margin triplet).
    - `classifier_names`: the modules sized by num_classes; a checkpoint whose entries differ in shape only
      there (trained on other identities) loads with those entries skipped.
    - `reference_prefixes`: (reference-implementation prefix, reidkit prefix) pairs, so the reference's
      checkpoints load by name; the backbone adds its own (`base.N.` -> `backbone.layerK.`).
    - `reference_ignored`: reference entries that the reference never used in forward (dead parameters).
    - `sample_kind`: "image" or "tracklet", the dataset.sample_kind the model reads.
    """

    loss_spec: ClassVar[dict[str, tuple[str, ...]]] = {}
    loss_defaults: ClassVar[dict[str, object]] = {}
    classifier_names: ClassVar[tuple[str, ...]] = ()
    reference_prefixes: ClassVar[tuple[tuple[str, str], ...]] = ()
    reference_ignored: ClassVar[tuple[str, ...]] = ()
    sample_kind: ClassVar[str] = "image"

    backbone: nn.Module
    feature_dim: int

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at the start of every epoch (0-based index). Default: nothing changes."""

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone map [B, C, h, w] (for activation maps)."""
        return self.backbone(x)

    def reference_key_map(self) -> list[tuple[str, str]]:
        backbone_prefixes = getattr(self.backbone, "reference_prefixes", ())
        return [(ref, "backbone." + own) for ref, own in backbone_prefixes] + list(self.reference_prefixes)


def init_head_params(modules: Iterable[nn.Module]) -> None:
    """docs/specs/top-db-net.md section 1: new layers get Kaiming-normal (fan_out) convs, BN weight 1 / bias 0, Linear
    N(0, 0.01). Only heads: the backbone keeps its own (pretrained or torchvision) initialisation, as in the reference,
    which initialises before attaching the backbone."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
