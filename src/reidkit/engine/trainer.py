"""The training loop and its hook interface (HookBase): epochs of steps, with everything else (LR schedule,
evaluation, logging, checkpoints, backbone freezing, loss warm-up) in hooks (engine.hooks).

    trainer = Trainer(model, criterion, optimizer, loader, epochs=400, device=device,
                      hooks=[LRSchedulerHook(sched), EvalHook(fn, 30), LoggerHook(run_dir), CheckpointHook(...)])
    trainer.resume(load_checkpoint(path, for_resume=True))   # optional
    trainer.train()

A step: forward (optionally under bf16/fp16 autocast, channels_last inputs), criterion in fp32 (called as
criterion(output, pids, **targets) with the batch entries the criterion names in `batch_targets`, e.g. the AITL
criterion's "attributes"; image criteria name none), backward; every
`accumulate_steps` batches: gradient clipping, optimizer step. SIGINT/SIGTERM finish the current optimizer step,
save a resumable checkpoint (hooks' on_interrupt) and raise TrainingInterrupted.

Resuming is exact (bit-identical weights and losses to an uninterrupted run) on CPU, with any data.workers: the
checkpoint holds the global RNG states (of every process), the train loader's generator and, when saved mid-epoch,
the RNG states of the epoch start, so the epoch's batches are drawn again and the first `iteration` of them
skipped; reidkit's train loaders seed every sample's augmentation from (seed, rank, epoch, position)
(data.loaders.SeededSampler), so fresh workers draw what the old ones drew. It is not exact when the number of
processes changes (a warning says so), with a loader of one's own whose workers draw from their own random state,
or after settings were changed on resume; on CUDA it is not guaranteed (reidkit sets cudnn.benchmark, and some
kernels are not deterministic, as PyTorch's reproducibility notes say).
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from reidkit.engine import distributed
from reidkit.utils.amp import amp_mode, autocast
from reidkit.engine.checkpoint import ResumeState, capture_rng, restore_rng, restore_training_state, unwrap
from reidkit.engine.distributed import DistInfo
from reidkit.engine.interrupt import TrainingInterrupted
from reidkit.errors import ConfigError, ReidkitError

# A second signal within this many seconds is the same event delivered twice (terminal + torchrun).
_REPEAT_WINDOW = 2.0


class HookBase:
    """A hook (fast-reid style; the ones reidkit uses are in engine.hooks): the trainer calls `before_train`,
    `before_epoch`, `before_step`, `after_step`, `after_epoch`, `after_train` and `on_interrupt`, and the hook
    sees the trainer as `self.trainer`."""

    trainer: "Trainer"

    def before_train(self) -> None: ...
    def before_epoch(self) -> None: ...
    def before_step(self) -> None: ...
    def after_step(self) -> None: ...
    def after_epoch(self) -> None: ...
    def after_train(self) -> None: ...

    def on_interrupt(self) -> None:
        """Training stops after a signal (the current step is finished)."""

    def state_dict(self) -> dict[str, Any]:
        """What a mid-epoch checkpoint must keep for this hook."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class NonFiniteLoss(ReidkitError):
    """The loss became NaN or infinite."""


@dataclass
class StepOutput:
    loss: float
    parts: dict[str, float] = field(default_factory=dict)
    images: int = 0


def _float_output(output: Any) -> Any:
    """A ModelOutput with fp32 tensors, so the losses run in full precision after an autocast forward."""
    streams = getattr(output, "streams", None)
    if streams is None:
        return output
    return type(output)({name: type(s)(s.logits.float(), s.features.float()) for name, s in streams.items()})


def _to_device(value: Any, device: torch.device) -> Any:
    """A tensor, or a mapping of tensors (e.g. attribute codes per group), on `device`."""
    if isinstance(value, Mapping):
        return {k: _to_device(v, device) for k, v in value.items()}
    return torch.as_tensor(value).to(device, non_blocking=True)


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: Iterable[Mapping[str, Any]],
        *,
        epochs: int,
        device: torch.device | str = "cpu",
        scheduler: Any | None = None,
        amp: str = "none",
        channels_last: bool = False,
        accumulate_steps: int = 1,
        grad_clip: float = 0.0,
        dist: DistInfo = DistInfo(),
        hooks: Sequence[HookBase] = (),
    ) -> None:
        self.model, self.module = model, unwrap(model)
        self.criterion, self.optimizer, self.scheduler, self.loader = criterion, optimizer, scheduler, loader
        self.epochs, self.device, self.dist = epochs, torch.device(device), dist
        self.amp, self.channels_last = amp, channels_last
        self.accumulate_steps, self.grad_clip = accumulate_steps, grad_clip
        self.scaler = torch.amp.GradScaler("cuda") if amp_mode(amp, self.device).grad_scaler else None
        self.start_epoch = self.start_iter = 0
        self.epoch = self.iter = self.global_step = 0
        self.num_batches = 0
        self.lr = optimizer.param_groups[0]["lr"]
        self.last_step = StepOutput(float("nan"))
        self.epoch_metrics: dict[str, float] = {}
        self.latest_metrics: dict[str, float] = {}
        self.stop_signal: int | None = None
        self.interrupt_checkpoint: Path | None = None
        self._signal_time = 0.0
        self._epoch_rng: list[Any] | None = None
        self._resume_rng: list[Any] | None = None
        # Parameters whose gradients are dropped before each optimizer step (FixBaseHook's frozen backbone).
        self.frozen: list[nn.Parameter] = []
        self.hooks: list[HookBase] = []
        self.register_hooks(hooks)

    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    def _call(self, stage: str) -> None:
        for hook in self.hooks:
            getattr(hook, stage)()

    # ------------------------------------------------------------------------------------------------ resume

    def resume(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Continue from a checkpoint of checkpoint_state(): weights, optimizer, scheduler, scaler and the
        ResumeState (epoch, iteration within the epoch, RNG states, hook states)."""
        restore_training_state(ckpt, self.model, self.optimizer, self.scheduler, self.scaler, source=source)
        state = ResumeState.from_checkpoint(ckpt)
        self.start_epoch, self.start_iter, self.global_step = state.epoch, state.iteration, state.global_step
        self.latest_metrics = state.metrics
        if self.start_epoch > self.epochs or (self.start_epoch == self.epochs and self.start_iter):
            raise ConfigError(f"{source}: has {self.start_epoch} epochs done but train.epochs={self.epochs}; raise "
                              "train.epochs to train further")
        if isinstance(state.rng, list) and len(state.rng) == self.dist.world_size:
            rank = self.dist.rank
            self._resume_rng = [state.rng[rank], state.epoch_rng[rank] if state.epoch_rng else None]
        elif state.rng is not None:
            print(f"warning: {source} was saved by {len(state.rng)} processes, this run has {self.dist.world_size}: "
                  "random states are not restored, the run continues but not bit-identically", file=sys.stderr)
        generator = getattr(self.loader, "generator", None)
        if generator is not None and state.loader_generator is not None:
            generator.set_state(state.loader_generator)
        for hook in self.hooks:
            hook.load_state_dict(state.hooks.get(type(hook).__name__, {}))

    def checkpoint_state(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments of save_checkpoint for the current point: after a completed epoch (iteration 0)
        or mid-epoch. Collective in distributed runs (gathers every process's RNG state)."""
        mid_epoch = 0 < self.iter < self.num_batches
        generator = getattr(self.loader, "generator", None)
        state = ResumeState(
            epoch=self.epoch if mid_epoch else self.epoch + 1, iteration=self.iter if mid_epoch else 0,
            global_step=self.global_step, metrics=dict(self.latest_metrics),
            rng=distributed.all_gather_object(capture_rng()), epoch_rng=self._epoch_rng if mid_epoch else None,
            loader_generator=generator.get_state() if generator is not None else None,
            hooks={type(h).__name__: h.state_dict() for h in self.hooks} if mid_epoch else {},
        )
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler,
                "config": dict(config or {}), **state.entries()}

    # ---------------------------------------------------------------------------------------------- signals

    def _on_signal(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.stop_signal is None:
            self.stop_signal, self._signal_time = signum, now
            if self.dist.is_main:
                print(f"\n{signal.Signals(signum).name}: finishing the current step, then saving a resumable "
                      "checkpoint (send it again to abort without saving)", file=sys.stderr, flush=True)
        elif now - self._signal_time > _REPEAT_WINDOW:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._on_signal)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop_requested(self) -> bool:
        stop = distributed.any_true(self.stop_signal is not None, self.device)
        if stop and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM  # another process was signalled
        return stop

    def _interrupt(self) -> None:
        self._call("on_interrupt")
        raise TrainingInterrupted(self.stop_signal or signal.SIGINT, self.interrupt_checkpoint)

    # ----------------------------------------------------------------------------------------------- epochs

    def train(self) -> None:
        with self._signal_handlers():
            self._call("before_train")
            for self.epoch in range(self.start_epoch, self.epochs):
                self.iter = self.start_iter if self.epoch == self.start_epoch else 0
                if self._run_epoch():
                    self._interrupt()
            self._call("after_train")

    def _set_epoch(self, epoch: int) -> None:
        for holder in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if hasattr(holder, "set_epoch"):
                holder.set_epoch(epoch)
        if hasattr(self.module, "set_epoch"):
            self.module.set_epoch(epoch)
        self.model.train()
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.epoch_metrics = {}

    def _epoch_batches(self) -> Iterator[Mapping[str, Any]]:
        """This epoch's batches; a mid-epoch resume draws them with the epoch-start RNG and skips the done ones."""
        if self._resume_rng is not None:
            rng, epoch_rng = self._resume_rng
            self._resume_rng = None
            if self.iter and epoch_rng is not None:
                restore_rng(epoch_rng)
                self._epoch_rng = distributed.all_gather_object(epoch_rng)
                batches = iter(self.loader)
                for _ in range(self.iter):
                    next(batches)
                restore_rng(rng)
                return batches
            restore_rng(rng)
        self._epoch_rng = distributed.all_gather_object(capture_rng())
        return iter(self.loader)

    def _run_epoch(self) -> bool:
        """One epoch (or its rest); True when training must stop on a signal."""
        self._set_epoch(self.epoch)
        self.num_batches = len(self.loader)  # type: ignore[arg-type]
        batches = self._epoch_batches()
        self._call("before_epoch")
        for batch in batches:
            self._call("before_step")
            self.last_step = self.run_step(batch)
            self.iter += 1
            self._call("after_step")
            boundary = self.iter % self.accumulate_steps == 0 or self.iter == self.num_batches
            if boundary and self._stop_requested():
                if self.iter < self.num_batches:
                    return True
                break
        self._call("after_epoch")
        self.iter = 0
        return self.stop_signal is not None and self.epoch + 1 < self.epochs

    # ------------------------------------------------------------------------------------------------ steps

    def run_step(self, batch: Mapping[str, Any]) -> StepOutput:
        images = batch["img"].to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:  # video clips [B, T, 3, H, W]: see the evaluator
            images = images.contiguous(memory_format=torch.channels_last)
        pids = torch.as_tensor(batch["pid"]).to(self.device, non_blocking=True)
        boundary = (self.iter + 1) % self.accumulate_steps == 0 or self.iter + 1 == self.num_batches
        no_sync = getattr(self.model, "no_sync", None)
        sync = no_sync() if (no_sync is not None and not boundary) else contextlib.nullcontext()
        with sync:
            with autocast(self.device, self.amp):
                output = self.model(images)
            loss, parts = self.criterion(_float_output(output) if self.amp != "none" else output, pids,
                                         **self._batch_targets(batch))
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"the loss is {loss.item()} at epoch {self.epoch + 1}, iteration {self.iter + 1} "
                                    f"({parts}); lower optim.lr, or set train.amp=none")
            scaled = loss / self.accumulate_steps
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        if boundary:
            self._optimizer_step()
        return StepOutput(float(loss.detach()), dict(parts), int(images.shape[0]))

    def _batch_targets(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch entries the criterion declares in `batch_targets` (e.g. the AITL criterion's "attributes"),
        on the device; image criteria declare none and get only (output, pids)."""
        targets = {}
        for key in getattr(self.criterion, "batch_targets", ()):
            if key not in batch:
                raise ConfigError(f"the criterion {type(self.criterion).__name__} needs the batch entry {key!r}, but "
                                  f"the training batches hold only {sorted(batch)}; use a dataset that provides it")
            targets[key] = _to_device(batch[key], self.device)
        return targets

    def _optimizer_step(self) -> None:
        for p in self.frozen:
            p.grad = None
        if self.grad_clip > 0:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
