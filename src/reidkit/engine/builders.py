"""What a run is built from: its context (setup, local_context), the model (build_model_from, load_for_eval,
model_to_device, wrap_distributed) and the loaders of the dataset's family (train_loader, test_loaders)."""
from __future__ import annotations

import functools
import os
import signal
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from reidkit.config import Config
from reidkit.engine import distributed
from reidkit.engine.checkpoint import seed_everything
from reidkit.engine.distributed import DistInfo

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunContext:
    dist: DistInfo
    device: torch.device


def setup(cfg: Config) -> RunContext:
    """Process group (under torchrun), device, CPU threads and seeds."""
    info, device = distributed.init_distributed(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # Each process draws its own augmentations and drop blocks; DDP copies rank 0's initial weights.
    seed_everything(cfg.train.seed + info.rank)
    return RunContext(info, device)


def local_context(cfg: Config) -> RunContext:
    """A single-process run (test, extract, demo baseline): the configured device and CPU threads."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    return RunContext(DistInfo(), distributed.resolve_device(cfg.train.device))


def build_model_from(cfg: Config, num_classes: int, *, pretrained: bool = True) -> nn.Module:
    """The configured model; pretrained=False skips the backbone weights (they are about to be replaced)."""
    from reidkit.models import build_model, load_weights

    model = build_model(cfg.model.name, num_classes, backbone=cfg.model.backbone,
                        pretrained=(cfg.model.pretrained or None) if pretrained else None, **cfg.model.options)
    if cfg.model.weights and pretrained:
        report = load_weights(model, cfg.model.weights)
        print(f"model.weights: {report}")
    return model


def _ignore_signals(original: Callable[[int], None] | None, worker_id: int) -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process decides when loading stops.
    # SIGTERM stays deliverable: it is how multiprocessing ends leftover workers at exit (ignoring it hangs
    # the exit), and `kill PID` or torchrun reach the main process only.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if original is not None:
        original(worker_id)


def shield_workers(loader: Any) -> Any:
    """Data-loading workers ignore SIGINT (Ctrl-C), so an interrupted step can finish and be saved."""
    if getattr(loader, "num_workers", 0) > 0:
        loader.worker_init_fn = functools.partial(_ignore_signals, loader.worker_init_fn)
    return loader


def test_loaders(cfg: Config, dataset: Any) -> tuple[Any, Any]:
    """Query and gallery loaders of the dataset's family (images; for video every test chunk of every
    tracklet, pooled back by the evaluator through the loader's dataset)."""
    loaders = dataset.test_loaders(cfg.data, batch_size=cfg.test.batch_size, seed=cfg.train.seed)
    return tuple(shield_workers(loader) for loader in loaders)


def model_to_device(model: nn.Module, cfg: Config, ctx: RunContext) -> nn.Module:
    model.to(ctx.device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def train_loader(cfg: Config, dataset: Any, ctx: RunContext) -> Any:
    """The training batches of the dataset's family (images; for video random clips of data.seq_len frames),
    this process's share of them."""
    return shield_workers(dataset.train_loader(cfg.data, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                                               rank=ctx.dist.rank, world_size=ctx.dist.world_size))


def wrap_distributed(model: nn.Module, ctx: RunContext) -> nn.Module:
    if not ctx.dist.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def load_for_eval(cfg: Config, weights: str | os.PathLike, default_classes: int, *, loaded: Any = None,
                   trust_checkpoint: bool = False) -> nn.Module:
    from reidkit.models import load_weights
    from reidkit.models.weights import torch_load

    obj = torch_load(weights, trust_checkpoint=trust_checkpoint) if loaded is None else loaded
    num_classes = default_classes
    if isinstance(obj, Mapping) and obj.get("format") == "reidkit" and int(obj.get("num_classes") or 0) > 0:
        num_classes = int(obj["num_classes"])
    model = build_model_from(cfg, num_classes, pretrained=False)
    report = load_weights(model, obj, source=weights)
    print(f"weights: {report}")
    return model
