"""The reidkit checkpoint format (reidkit_checkpoint writes it, extract_state_dict reads it) and loading weights:
reidkit checkpoints, the reference Top-DB-Net implementation's checkpoints and bare state dicts. Pretrained
backbones: models/pretrained.py.

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


def listing(keys: list[str]) -> str:
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
                               f"({listing(names)}), and unpickling them can run code; {_OPT_IN}")
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


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def check_reidkit_header(obj: Any, source: str) -> None:
    """Raise CheckpointError unless `obj` is a reidkit checkpoint of a version this reidkit reads."""
    if not isinstance(obj, Mapping) or obj.get("format") != "reidkit":
        found = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        given = f"an unknown format {obj['format']!r}" if isinstance(obj, Mapping) and "format" in obj else found
        raise CheckpointError(f"{source}: not a reidkit checkpoint (expected {{'format': 'reidkit', ...}}, got "
                              f"{given})")
    version = obj.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{source}: reidkit checkpoint version {version!r}; this reidkit reads up to "
                              f"{FORMAT_VERSION}")


def extract_state_dict(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, format) of a reidkit checkpoint, a reference checkpoint or a bare state dict; the
    DataParallel `module.` prefix is stripped."""
    if isinstance(obj, Mapping) and "format" in obj:
        check_reidkit_header(obj, source)
        state, kind = obj.get("model"), "reidkit"
        if not is_state_dict(state):
            raise CheckpointError(f"{source}: reidkit checkpoint without a 'model' state dict")
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        state, kind = obj["state_dict"], "reference"
        if not is_state_dict(state):
            raise CheckpointError(f"{source}: 'state_dict' is not a mapping of names to tensors")
    elif is_state_dict(obj):
        state, kind = obj, "state_dict"
    else:
        top = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{source}: expected a reidkit checkpoint {{'format': 'reidkit', 'model': ...}}, a reference "
            f"checkpoint {{'state_dict': ...}} or a state dict of tensors; got {top}"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}, kind


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel wrapper (the model itself otherwise)."""
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


def _map_entries(state: Mapping[str, torch.Tensor], target: nn.Module, own: Mapping[str, Any], report: LoadReport
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """The checkpoint's entries under the model's names ({name: tensor}, {name: checkpoint key}) and the keys
    that have no place in the model; reference entries the model never used go to report.ignored."""
    ref_map = target.reference_key_map() if hasattr(target, "reference_key_map") else []
    ignored_prefixes = tuple(getattr(target, "reference_ignored", ()))
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
            raise CheckpointError(f"{report.source}: entries {origin[name]!r} and {key!r} both map to {name!r}")
        if name != key:
            report.format = "reference"
        mapped[name], origin[name] = value, key
    return mapped, origin, unexpected


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
    target = unwrap(model)
    own = target.state_dict()
    classifiers = tuple(f"{name}." for name in getattr(target, "classifier_names", ()))
    hint = _mismatch_hint(obj, target)
    report = LoadReport(source=source, format=kind)
    mapped, origin, unexpected = _map_entries(state, target, own, report)
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected entries not in {type(target).__name__}{hint}: {listing(unexpected)}"
        )
    # Checkpoints from before PyTorch 0.4.1 lack BN counters; they do not change any output.
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{source}: entries missing for {type(target).__name__}{hint}: {listing(missing)}")

    misfit = [k for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
    bad = [k for k in misfit if not k.startswith(classifiers)]
    if bad:
        shapes = [f"{origin[k]} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}" for k in bad]
        raise CheckpointError(f"{source}: entries with the wrong shape{hint}: {listing(shapes)}")
    if misfit:
        report.skipped = [f"{origin[k]} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}" for k in misfit]
        warnings.warn(
            f"{source}: skipped classifier entries trained on a different number of identities "
            f"(the model keeps its own): {listing(report.skipped)}",
            stacklevel=2,
        )
    new_state = dict(own)
    for k, v in mapped.items():
        if k not in misfit:
            new_state[k] = v
            report.loaded.append(k)
    target.load_state_dict(new_state, strict=True)
    return report


def reidkit_checkpoint(model: nn.Module, **entries: Any) -> dict[str, Any]:
    """The reidkit checkpoint format (docs/architecture.md) of `model`: the one writer of its header (format,
    version, model_name, num_classes, backbone: what load_weights' mismatch hint compares) and weights, plus
    `entries` (epoch, optimizer, ... for the trainer's checkpoints; they may override the header's defaults)."""
    target = unwrap(model)
    header: dict[str, Any] = {"model_name": getattr(target, "model_name", type(target).__name__),
                              "num_classes": int(getattr(target, "num_classes", 0))}
    arch = getattr(getattr(target, "backbone", None), "arch", None)
    if arch is not None:
        header["backbone"] = arch
    return {"format": "reidkit", "version": FORMAT_VERSION, "model": target.state_dict(), **header, **entries}


def save_weights(model: nn.Module, path: str | os.PathLike, **meta: Any) -> None:
    """Write a reidkit checkpoint holding the model weights (plus `meta`, e.g. epoch) atomically. The trainer's
    full checkpoints (optimizer, rng, ...) are the same format (engine.checkpoint.save_checkpoint)."""
    atomic_torch_save(reidkit_checkpoint(model, **meta), path)


def to_reference_state_dict(model: nn.Module, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The model's weights under the reference implementation's names (for running the reference on them).
    Raises CheckpointError when the model has no reference counterpart for some entry."""
    target = unwrap(model)
    ref_map = target.reference_key_map() if hasattr(target, "reference_key_map") else []
    out: dict[str, torch.Tensor] = {}
    for key, value in target.state_dict().items():
        ref = next((r + key[len(m) :] for r, m in ref_map if key.startswith(m)), None)
        if ref is None:
            raise CheckpointError(f"{type(target).__name__} entry {key!r} has no reference-implementation name")
        out[prefix + ref] = value
    return out
