"""Optimizers (registry OPTIMIZERS) and per-epoch learning-rate schedules (registry SCHEDULES).

A schedule is a factor of the configured peak LR per 0-based epoch index, applied with LambdaLR and stepped once
per epoch. The spec's schedules (docs/specs/top-db-net.md section 7), with ep = epoch index + 1 and milestones [50, 200,
300]:

- warmup_db (Top-DB-Net, optim.lr 5e-4): ep < 50: lr * (ep // 5 + 1) / 10, i.e. 1e-4 * (ep // 5 + 1) / 2;
  then 5e-4 until ep 200, 5e-5 until ep 300, 5e-6 after.
- bdb (BDB, optim.lr 1e-3): the same shape, so 1e-4 * (ep // 5 + 1), 1e-3, 1e-4, 1e-5.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from reidkit.config import OptimConfig, ScheduleConfig
from reidkit.errors import ConfigError, RegistryError
from reidkit.registry import Registry


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def parameter_groups(model: nn.Module, lr: float, backbone_lr_factor: float) -> list[dict]:
    """[new layers at `lr`, backbone at backbone_lr_factor x lr]; the new layers come first, so param_groups[0]
    (the LR the trainer logs) is the peak LR. The schedules scale each group's own initial LR."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"optim.backbone_lr_factor={backbone_lr_factor}: the model has no `backbone` module")
    in_backbone = {id(p) for p in backbone.parameters()}
    params = trainable_parameters(model)
    groups = [{"params": [p for p in params if id(p) not in in_backbone], "lr": lr},
              {"params": [p for p in params if id(p) in in_backbone], "lr": lr * backbone_lr_factor}]
    return [g for g in groups if g["params"]]


# An optimizer builder takes the parameters (or parameter groups) and the optim section.
OPTIMIZERS: Registry[Callable[[list, OptimConfig], torch.optim.Optimizer]] = Registry("optimizer")


def _betas(cfg: OptimConfig) -> tuple[float, float]:
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise ConfigError(f"optim.betas={cfg.betas!r}: expected two numbers in [0, 1)")
    return tuple(cfg.betas)


@OPTIMIZERS.register("adam")
def adam(params: list, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=_betas(cfg), weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params: list, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=_betas(cfg), weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(params: list, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov)


def _registered(registry: Registry, name: str, key: str) -> Any:
    try:
        return registry.get(name)
    except RegistryError as error:
        raise ConfigError(f"{key}: {error}") from None


def build_optimizer(params: Iterable[nn.Parameter] | nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Optimizer optim.name over `params` (a module: its parameters that require grad; with
    optim.backbone_lr_factor != 1, the backbone's parameters form a second group at that factor of optim.lr)."""
    builder = _registered(OPTIMIZERS, cfg.name, "optim.name")
    if isinstance(params, nn.Module):
        model = params
        params = (parameter_groups(model, cfg.lr, cfg.backbone_lr_factor) if cfg.backbone_lr_factor != 1.0
                  else trainable_parameters(model))
    params = list(params)
    if not params:
        raise ConfigError("the model has no trainable parameters")
    return builder(params, cfg)


class EpochFactor:
    """Picklable LR factor per 0-based epoch index (LambdaLR stores its __dict__ in state_dict)."""

    def __call__(self, epoch: int) -> float:
        return self.factor(int(epoch))

    def factor(self, epoch: int) -> float:
        return 1.0


class StepWarmupFactor(EpochFactor):
    """warmup_db / bdb: 10 equal warm-up steps over [0, milestones[0]), then gamma at each later milestone."""

    def __init__(self, milestones: Sequence[int], gamma: float) -> None:
        self.milestones, self.gamma = list(milestones), gamma

    def factor(self, epoch: int) -> float:
        ep = epoch + 1  # the reference counts epochs from 1
        warmup = self.milestones[0]
        if ep < warmup:
            return (ep * 10 // warmup + 1) / 10
        return self.gamma ** sum(ep >= m for m in self.milestones[1:])


class MultiStepFactor(EpochFactor):
    """Linear warm-up from warmup_factor over warmup_epochs, then gamma at each milestone (epoch index)."""

    def __init__(self, milestones: Sequence[int], gamma: float, warmup_epochs: int, warmup_factor: float) -> None:
        self.milestones, self.gamma = list(milestones), gamma
        self.warmup_epochs, self.warmup_factor = warmup_epochs, warmup_factor

    def warmup(self, epoch: int) -> float:
        if epoch >= self.warmup_epochs:
            return 1.0
        return self.warmup_factor + (1 - self.warmup_factor) * epoch / self.warmup_epochs

    def factor(self, epoch: int) -> float:
        return self.warmup(epoch) * self.gamma ** sum(epoch >= m for m in self.milestones)


class CosineFactor(MultiStepFactor):
    """Linear warm-up, then cosine annealing from 1 to min_lr_factor at the last epoch."""

    def __init__(self, epochs: int, warmup_epochs: int, warmup_factor: float, min_lr_factor: float) -> None:
        super().__init__([], 1.0, warmup_epochs, warmup_factor)
        self.epochs, self.min_lr_factor = epochs, min_lr_factor

    def factor(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup(epoch)
        span = max(1, self.epochs - 1 - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))


# A schedule builder takes the schedule section and the run's epochs and returns its factor function.
SCHEDULES: Registry[Callable[[ScheduleConfig, int], EpochFactor]] = Registry("schedule")


@SCHEDULES.register("warmup_db")
@SCHEDULES.register("bdb")
def step_warmup(cfg: ScheduleConfig, epochs: int) -> EpochFactor:
    if len(cfg.milestones) != 3 or cfg.milestones[0] < 1:
        raise ConfigError(
            f"schedule.milestones={list(cfg.milestones)}: {cfg.name} expects [end of warm-up >= 1, first decay, "
            "second decay], e.g. [50, 200, 300]"
        )
    return StepWarmupFactor(cfg.milestones, cfg.gamma)


def _warmup_factor(cfg: ScheduleConfig) -> float:
    if not 0 < cfg.warmup_factor <= 1:
        raise ConfigError(f"schedule.warmup_factor={cfg.warmup_factor}: expected a value in (0, 1]")
    return cfg.warmup_factor


@SCHEDULES.register("multistep")
def multistep(cfg: ScheduleConfig, epochs: int) -> EpochFactor:
    return MultiStepFactor(cfg.milestones, cfg.gamma, cfg.warmup_epochs, _warmup_factor(cfg))


@SCHEDULES.register("cosine")
def cosine(cfg: ScheduleConfig, epochs: int) -> EpochFactor:
    return CosineFactor(epochs, cfg.warmup_epochs, _warmup_factor(cfg), cfg.min_lr_factor)


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig, epochs: int) -> EpochFactor:
    return EpochFactor()


def schedule_factor(cfg: ScheduleConfig, epochs: int) -> EpochFactor:
    """The factor function of schedule `cfg` for a run of `epochs` epochs (validated)."""
    builder = _registered(SCHEDULES, cfg.name, "schedule.name")
    milestones = list(cfg.milestones)
    if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(m < 0 for m in milestones):
        raise ConfigError(f"schedule.milestones={milestones}: expected increasing epochs >= 0")
    return builder(cfg, epochs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch LambdaLR: step it once at the end of every epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=schedule_factor(cfg, epochs))


# ------------------------------------------------------------------------------------- settings on resume


def _plain(value: object) -> object:
    """Tuples as lists (a state dict round trip may turn one into the other), for comparisons."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def schedule_settings(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> dict:
    """The settings of a freshly built optimizer and schedule (per group hyper-parameters, initial LRs, the
    factor functions), to put back with apply_settings after a checkpoint's state was loaded over them."""
    return copy.deepcopy({
        "groups": [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in optimizer.param_groups],
        "base_lrs": list(scheduler.base_lrs),
        "factors": list(scheduler.lr_lambdas),
    })


def _differs(settings: Mapping, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> bool:
    groups = [{k: _plain(v) for k, v in g.items() if k not in ("params", "lr")} for g in optimizer.param_groups]
    factors = [(type(f), _plain(vars(f))) for f in scheduler.lr_lambdas]
    return (groups != [{k: _plain(v) for k, v in g.items()} for g in settings["groups"]]
            or list(scheduler.base_lrs) != settings["base_lrs"]
            or factors != [(type(f), _plain(vars(f))) for f in settings["factors"]])


def apply_settings(settings: Mapping, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LambdaLR) -> bool:
    """Put `settings` (schedule_settings of the config's optimizer and schedule) in place of the ones a
    checkpoint's state brought along, keeping that state (moments, step counts, the schedule's epoch); the
    LR becomes the new schedule's at that epoch. False, and nothing touched, when they are the same.

    Raises ConfigError when the checkpoint's optimizer is another kind (its state does not carry over)."""
    if [sorted(g) for g in settings["groups"]] != [sorted(k for k in g if k not in ("params", "lr"))
                                                   for g in optimizer.param_groups]:
        raise ConfigError("optim.name: the checkpoint's optimizer state is of another optimizer, and does not carry "
                          "over; resume with the run's optim.name, or start a new run from its weights "
                          "(model.weights=CHECKPOINT)")
    if not _differs(settings, optimizer, scheduler):
        return False
    fresh = copy.deepcopy(settings)
    scheduler.base_lrs = fresh["base_lrs"]
    scheduler.lr_lambdas = fresh["factors"]
    lrs = [base * factor(scheduler.last_epoch) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, values, lr in zip(optimizer.param_groups, fresh["groups"], lrs):
        group.update(values)
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports
    return True
