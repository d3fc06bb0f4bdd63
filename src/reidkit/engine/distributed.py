"""Process groups for `torchrun --nproc_per_node N -m reidkit train ...`: one process per device, gloo on CPU,
nccl on CUDA. Without torchrun's environment (WORLD_SIZE unset or 1) everything runs in one process and the
helpers below are no-ops, so the trainer calls them unconditionally."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from reidkit.errors import ConfigError

# Rank 0 evaluates while the others wait at a barrier: allow long evaluations before the group gives up.
_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r}: expected an integer (set by torchrun)") from None


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment variables."""
    return DistInfo(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; 'cuda' -> cuda:<local_rank>."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise ConfigError(f"train.device={preference!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={preference!r} but CUDA is not available; use train.device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise ConfigError(f"train.device={preference!r}: expected auto, cpu, cuda or cuda:N")
    return device


def init_distributed(device_preference: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join torchrun's process group (if any) and pick this process's device."""
    info = env_info()
    device = resolve_device(device_preference, info.local_rank)
    if not info.enabled or dist.is_initialized():
        return info, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=_TIMEOUT)
    return info, device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_enabled() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_enabled():
        dist.barrier()


def any_true(flag: bool, device: torch.device | None = None) -> bool:
    """True on every process when `flag` is true on at least one (e.g. a stop request after a signal)."""
    if not is_enabled():
        return flag
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([1.0 if flag else 0.0], device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def all_gather_object(obj: Any) -> list[Any]:
    """`obj` of every process, in rank order ([obj] without a process group)."""
    if not is_enabled():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every process (reidkit index: the gallery's state, read by the writing rank)."""
    if not is_enabled():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def mean_over_processes(values: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """Average each value over the processes (all must pass the same keys)."""
    if not is_enabled() or not values:
        return dict(values)
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist()))
