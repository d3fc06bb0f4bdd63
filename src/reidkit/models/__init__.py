"""Models: `build_model(name, num_classes, backbone="resnet50", pretrained=None, **options)`.

Importing this package registers every model (MODELS) and backbone (BACKBONES).
"""
from __future__ import annotations

import inspect
import os
from typing import Any

from reidkit.errors import ConfigError
from reidkit.models import asta, bdb, bot, ft_net, top_db_net, video  # noqa: F401  (registration)
from reidkit.models.backbones import BACKBONES, build_backbone
from reidkit.models.base import MODELS, ReidModel
from reidkit.models.drop_blocks import BatchDropBlock, TopDropBlock, batch_drop_mask, top_drop_mask
from reidkit.models.outputs import ModelOutput, Stream
from reidkit.models.weights import LoadReport, load_weights, save_weights, to_reference_state_dict


def model_options(name: str) -> dict[str, Any]:
    """The keyword options model `name` accepts, with their defaults."""
    signature = inspect.signature(MODELS.get(name))
    return {p.name: p.default for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}


def build_model(
    name: str,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: str | os.PathLike | bool | None = None,
    **options: Any,
) -> ReidModel:
    """Model `name` (see MODELS.names()) with `num_classes` training identities on `backbone`
    (see BACKBONES.names()). `pretrained`: backbone weights (a path, a torchvision weights name such as
    "imagenet" found in torchvision's cache, or "deepsort" for MobileNetV2). `options`: see model_options."""
    cls = MODELS.get(name)
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; accepted: {accepted}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    model = cls(num_classes, backbone, pretrained, **options)
    model.model_name = name
    return model


__all__ = [
    "BACKBONES",
    "MODELS",
    "BatchDropBlock",
    "LoadReport",
    "ModelOutput",
    "ReidModel",
    "Stream",
    "TopDropBlock",
    "batch_drop_mask",
    "build_backbone",
    "build_model",
    "load_weights",
    "model_options",
    "save_weights",
    "to_reference_state_dict",
    "top_drop_mask",
]
