"""Mixed-precision modes (config key train.amp): the one place that maps a mode to its autocast dtype.

    mode = amp_mode("bf16", device)      # ConfigError for an unknown mode or fp16 off CUDA
    with autocast(device, "bf16"): ...   # training forward and feature extraction alike
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from reidkit.errors import ConfigError, RegistryError
from reidkit.registry import Registry


@dataclass(frozen=True)
class AmpMode:
    dtype: torch.dtype | None  # None: full precision, no autocast
    grad_scaler: bool = False  # fp16 gradients underflow without loss scaling
    cuda_only: bool = False


AMP_MODES: Registry[AmpMode] = Registry("amp mode")
AMP_MODES.register("none")(AmpMode(None))
AMP_MODES.register("bf16")(AmpMode(torch.bfloat16))
AMP_MODES.register("fp16")(AmpMode(torch.float16, grad_scaler=True, cuda_only=True))


def amp_mode(name: str, device: torch.device | str | None = None) -> AmpMode:
    """The mode `name` (train.amp), checked against `device` when one is given."""
    try:
        mode = AMP_MODES.get(name)
    except RegistryError as error:
        raise ConfigError(f"train.amp: {error}") from None
    if mode.cuda_only and device is not None and torch.device(device).type != "cuda":
        raise ConfigError(f"train.amp={name} needs a CUDA device (fp16 with a grad scaler); on CPU use train.amp=none "
                          "(train.amp=bf16 only on a CPU with native bf16, AVX512-BF16 or AMX: elsewhere it is many "
                          "times slower)")
    return mode


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager:
    """torch.autocast for mode `amp` on `device`; a no-op context for full precision."""
    mode = AMP_MODES.get(amp)
    if mode.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=mode.dtype)
