"""Checkpoints in the reidkit format (docs/architecture.md), written atomically: a save interrupted at any
point leaves the previous file intact.

    save_checkpoint("runs/x/checkpoints/last.pth", model, optimizer=opt, scheduler=sched, epoch=3, ...)
    ckpt = load_checkpoint("runs/x/checkpoints/last.pth")     # validated dict
    restore_training_state(ckpt, model, optimizer, scheduler) # for --resume

Everything stored is tensors and plain Python values, so the file loads with torch.load(weights_only=True).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from reidkit.errors import CheckpointError
from reidkit.models.weights import check_reidkit_header, reidkit_checkpoint, torch_load, unwrap
from reidkit.utils.io import atomic_torch_save

RESUME_KEYS = ("optimizer", "epoch", "rng")


# ------------------------------------------------------------------------------------------------------- RNG


def capture_rng() -> dict[str, Any]:
    """The state of python's, numpy's and torch's (CPU and CUDA) global generators, as plain values and tensors."""
    key, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": key, "state": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of capture_rng."""
    try:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        np_state = state["numpy"]
        np.random.set_state((np_state["key"], np_state["state"].numpy().astype(np.uint32), np_state["pos"],
                             np_state["has_gauss"], np_state["cached_gaussian"]))
        torch.set_rng_state(state["torch"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's random-generator state is malformed ({error})") from None
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ resume state


@dataclass
class ResumeState:
    """Where training stands besides the weights, optimizer, scheduler and grad scaler: what a checkpoint holds
    so that a resumed run continues bit-identically (engine.trainer). Its fields are checkpoint entries."""

    epoch: int  # epochs completed; mid-epoch, the index of the epoch in progress
    iteration: int = 0  # batches done within `epoch` (0: at an epoch boundary)
    global_step: int = 0  # optimizer steps so far
    metrics: dict = field(default_factory=dict)  # the latest evaluation
    rng: Optional[list] = None  # capture_rng() of every process
    epoch_rng: Optional[list] = None  # mid-epoch: every process's RNG states at the start of the epoch
    loader_generator: Optional[torch.Tensor] = None  # the train loader's generator state
    hooks: dict = field(default_factory=dict)  # mid-epoch: each hook's state_dict(), by class name

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> "ResumeState":
        return cls(epoch=int(ckpt["epoch"]), iteration=int(ckpt.get("iteration", 0)),
                   global_step=int(ckpt.get("global_step", 0)), metrics=dict(ckpt.get("metrics", {})),
                   rng=ckpt.get("rng"), epoch_rng=ckpt.get("epoch_rng"),
                   loader_generator=ckpt.get("loader_generator"), hooks=dict(ckpt.get("hooks", {})))

    def entries(self) -> dict[str, Any]:
        """The checkpoint entries (keyword arguments of save_checkpoint); unset optional ones are left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if v is not None or k == "rng"}


# ------------------------------------------------------------------------------------------------ save / load


def checkpoint_dict(
    model: nn.Module,
    *,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    rng: Any | None = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The reidkit checkpoint of `model` after `epoch` completed epochs (`extra`: e.g. iteration, epoch_rng)."""
    ckpt = reidkit_checkpoint(model, epoch=int(epoch), config=dict(config or {}), metrics=dict(metrics or {}))
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    if rng is not None:
        ckpt["rng"] = rng
    ckpt.update(extra)
    return ckpt


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **kwargs: Any) -> Path:
    """Write checkpoint_dict(model, **kwargs) to `path` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    atomic_torch_save(checkpoint_dict(model, **kwargs), path)
    return path


def load_checkpoint(path: str | os.PathLike, *, for_resume: bool = False, trust_checkpoint: bool = False,
                    loaded: Any = None) -> dict[str, Any]:
    """A reidkit checkpoint as a dict; for_resume also requires the optimizer, epoch and RNG state. Read
    tensors-only unless trust_checkpoint; `loaded`: the file's content already read (it is validated, not read
    again)."""
    obj = torch_load(path, trust_checkpoint=trust_checkpoint) if loaded is None else loaded
    check_reidkit_header(obj, str(path))
    if for_resume:
        missing = [k for k in RESUME_KEYS if k not in obj]
        if missing:
            raise CheckpointError(f"{path}: cannot resume from it: no {', '.join(missing)} (a weights-only file?); "
                                  "use it as model.weights to fine-tune instead")
    return dict(obj)


def restore_training_state(
    ckpt: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    *,
    source: str = "checkpoint",
) -> None:
    """Load model, optimizer, scheduler and grad-scaler states from `ckpt` (strict: every entry must fit)."""
    target = unwrap(model)
    name = getattr(target, "model_name", None)
    if name and ckpt.get("model_name") and ckpt["model_name"] != name:
        raise CheckpointError(f"{source}: holds a {ckpt['model_name']!r} model; the config builds {name!r}")
    try:
        target.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: the model weights do not fit: {str(error).splitlines()[0]} ...") from None
    try:
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and "scheduler" in ckpt:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{source}: the optimizer/scheduler state does not fit this config ({error})") from None
