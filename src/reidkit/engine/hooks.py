"""The trainer's hooks (engine.trainer.HookBase): LR schedule, evaluation, logging, checkpoints, backbone
freezing (fixbase) and loss warm-up.

Order in engine.launch: LRSchedulerHook, CheckpointHook, EvalHook(final=False), LoggerHook: the checkpoint
holds the stepped scheduler and is on disk before an evaluation can fail (a failed evaluation never costs the
epoch's weights), and an epoch's record holds its evaluation. The final evaluation runs after training
(engine.launch), so that a resume can redo just that; LoggerHook.record_evaluation adds it to the history.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn
from tqdm import tqdm

from reidkit.engine import distributed
from reidkit.engine.trainer import HookBase
from reidkit.errors import ConfigError
from reidkit.losses.warmup import ScaledCriterion, loss_warmup_factor
from reidkit.models.weights import unwrap
from reidkit.utils.io import atomic_open, atomic_write_text

# TensorBoard tag groups of LoggerHook: train_iter/* per logged step, train_epoch/* and eval/* per epoch.
ITER_TAG, EPOCH_TAG, EVAL_TAG = "train_iter", "train_epoch", "eval"


def should_run(period: int, completed_epochs: int, total_epochs: int) -> bool:
    """Every `period` epochs (0: never) and after the last epoch."""
    return completed_epochs == total_epochs or (period > 0 and completed_epochs % period == 0)


class LRSchedulerHook(HookBase):
    """Steps the per-epoch scheduler at the end of every epoch."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def after_epoch(self) -> None:
        self.scheduler.step()


class EvalHook(HookBase):
    """Evaluates on rank 0 every `period` epochs and after the last one (final=False: not after the last one,
    which the caller evaluates after training); the others wait.

    `evaluate` takes the (unwrapped) model and returns a flat {name: value} mapping, stored in
    trainer.epoch_metrics (this epoch's record) and trainer.latest_metrics.
    """

    def __init__(self, evaluate: Callable[[Any], Mapping[str, float]], period: int, *, final: bool = True) -> None:
        self.evaluate, self.period, self.final = evaluate, period, final

    def after_epoch(self) -> None:
        t = self.trainer
        if not should_run(self.period, t.epoch + 1, t.epochs) or (t.epoch + 1 == t.epochs and not self.final):
            return
        if t.stop_signal is not None and t.epoch + 1 < t.epochs:
            return  # stopping: evaluate after resuming rather than delay the exit
        if t.dist.is_main:
            metrics = dict(self.evaluate(t.module))
            t.epoch_metrics.update(metrics)
            t.latest_metrics = metrics
        distributed.barrier()


def _format_metrics(metrics: Mapping[str, float]) -> str:
    shown = [(k, v) for k, v in metrics.items() if k in ("mAP", "Rank-1", "rerank/mAP", "rerank/Rank-1")]
    return "  ".join(f"{k} {v:.1%}" for k, v in shown)


class LoggerHook(HookBase):
    """tqdm bar per epoch (loss, lr, images/s), a one-line summary per epoch, TensorBoard scalars and the
    history file metrics.jsonl (one JSON object per epoch, rewritten atomically). Files on rank 0 only."""

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = True, progress: bool = True,
                 log_period: int = 10, print_fn: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.history_path = self.run_dir / "metrics.jsonl"
        self.tensorboard, self.progress, self.log_period = tensorboard, progress, log_period
        self.print = print_fn or tqdm.write
        self.history: list[dict[str, Any]] = []
        self.writer = None
        self.bar: tqdm | None = None
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.images = 0
        self.elapsed = 0.0

    # --------------------------------------------------------------------------------------------- lifecycle

    def before_train(self) -> None:
        if not self.trainer.dist.is_main:
            return
        if self.history_path.is_file():
            # Resuming: keep the epochs the checkpoint has done, drop any recorded after it.
            done = self.trainer.start_epoch
            self.history = [r for r in _read_jsonl(self.history_path) if r.get("epoch", math.inf) <= done]
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.trainer.global_step)

    def before_epoch(self) -> None:
        t = self.trainer
        if t.iter == 0:
            self._reset()
        self._tick = time.perf_counter()
        if t.dist.is_main and self.progress:
            self.bar = tqdm(total=t.num_batches, initial=t.iter, desc=f"epoch {t.epoch + 1}/{t.epochs}",
                            unit="it", dynamic_ncols=True, leave=False)

    def after_step(self) -> None:
        t, out = self.trainer, self.trainer.last_step
        now = time.perf_counter()
        self.elapsed += now - self._tick
        self._tick = now
        self.steps += 1
        self.images += out.images
        for key, value in {"loss": out.loss, **{f"loss/{k}": v for k, v in out.parts.items()}}.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        if not t.dist.is_main or (t.iter % self.log_period and t.iter != t.num_batches):
            return
        speed = self.images * t.dist.world_size / max(self.elapsed, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{self.sums['loss'] / self.steps:.3f}", lr=f"{t.lr:.2e}",
                                 img_s=f"{speed:.1f}", refresh=False)
            self.bar.update(t.iter - self.bar.n)
        if self.writer is not None:
            # Per-iteration points (x: global step) under train_iter/, per-epoch ones under train_epoch/ and
            # eval/ (x: epoch): one tag with two x axes draws a meaningless line.
            self.writer.add_scalar(f"{ITER_TAG}/loss", out.loss, t.global_step)
            self.writer.add_scalar(f"{ITER_TAG}/images_per_sec", speed, t.global_step)

    def after_epoch(self) -> None:
        t = self.trainer
        means = {k: v / max(self.steps, 1) for k, v in self.sums.items()}
        # Collective: every rank averages its losses with the others before rank 0 writes them.
        means = distributed.mean_over_processes(means, t.device)
        if not t.dist.is_main:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        speed = self.images * t.dist.world_size / max(self.elapsed, 1e-9)
        record = {"epoch": t.epoch + 1, "lr": t.lr, **means, "images_per_sec": speed,
                  "epoch_time": self.elapsed, **t.epoch_metrics}
        self.history.append(record)
        _write_jsonl(self.history_path, self.history)
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    group = EVAL_TAG if key in t.epoch_metrics else EPOCH_TAG
                    self.writer.add_scalar(f"{group}/{key}", value, t.epoch + 1)
            self.writer.flush()
        self.print(
            f"epoch {t.epoch + 1}/{t.epochs}  loss {means.get('loss', float('nan')):.4f}  lr {t.lr:.2e}  "
            f"{speed:.1f} img/s  {self.elapsed:.1f} s  {_format_metrics(t.epoch_metrics)}".rstrip()
        )

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_interrupt(self) -> None:
        self._close()

    def after_train(self) -> None:
        self._close()

    def record_evaluation(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Add an evaluation made after training (the final one) to epoch `epoch`'s record, and to TensorBoard."""
        record = next((r for r in self.history if r.get("epoch") == epoch), None)
        if record is None:  # its training record was lost with an earlier process
            record = {"epoch": epoch}
            self.history.append(record)
        record.update(metrics)
        _write_jsonl(self.history_path, self.history)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"{EVAL_TAG}/{key}", value, epoch)
            writer.close()

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "steps": self.steps, "images": self.images, "elapsed": self.elapsed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = dict(state.get("sums", {}))
        self.steps = int(state.get("steps", 0))
        self.images = int(state.get("images", 0))
        self.elapsed = float(state.get("elapsed", 0.0))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _write_jsonl(path: Path, records: list[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in records))


class CheckpointHook(HookBase):
    """checkpoints/last.pth after every epoch (the resume point) and checkpoints/epoch_NNN.pth every `period`
    epochs and after the last; a resumable last.pth when training is interrupted. Written on rank 0,
    atomically."""

    def __init__(self, directory: str | os.PathLike, *, period: int, save_last: bool = True,
                 config: Mapping[str, Any] | None = None) -> None:
        self.directory = Path(directory)
        self.period, self.save_last = period, save_last
        self.config = dict(config or {})
        self.last_path = self.directory / "last.pth"
        self.saved: list[Path] = []

    def epoch_path(self, completed: int) -> Path:
        return self.directory / f"epoch_{completed:03d}.pth"

    def _save(self, path: Path) -> Path:
        from reidkit.engine.checkpoint import save_checkpoint

        state = self.trainer.checkpoint_state(config=self.config)  # collective (RNG of every rank)
        if self.trainer.dist.is_main:
            save_checkpoint(path, self.trainer.model, **state)
        return path

    def after_epoch(self) -> None:
        t = self.trainer
        completed = t.epoch + 1
        periodic = should_run(self.period, completed, t.epochs)
        if not (self.save_last or periodic):
            return
        first = self._save(self.last_path if self.save_last else self.epoch_path(completed))
        if periodic and self.save_last and t.dist.is_main:
            # A copy is cheaper than serialising again, and the copy is atomic as well.
            with open(first, "rb") as src, atomic_open(self.epoch_path(completed), "wb") as dst:
                shutil.copyfileobj(src, dst)
        if periodic:
            self.saved.append(self.epoch_path(completed))

    def on_interrupt(self) -> None:
        self.trainer.interrupt_checkpoint = self._save(self.last_path)


class LossWarmupHook(HookBase):
    """Scales the trainer's loss by loss_warmup_factor over the first `warmup_epochs` epochs. The factor is
    derived from the epoch and iteration, so a resumed run continues the warm-up where it stopped."""

    def __init__(self, warmup_epochs: int, start: float = 0.1) -> None:
        if warmup_epochs < 0:
            raise ConfigError(f"loss warm-up: warmup_epochs={warmup_epochs}, expected >= 0")
        self.warmup_epochs, self.start = warmup_epochs, start

    def before_train(self) -> None:
        if not isinstance(self.trainer.criterion, ScaledCriterion):
            self.trainer.criterion = ScaledCriterion(self.trainer.criterion)

    def before_step(self) -> None:
        t = self.trainer
        t.criterion.factor = loss_warmup_factor(t.epoch * t.num_batches + t.iter,
                                                self.warmup_epochs * t.num_batches, self.start)


class FixBaseHook(HookBase):
    """Trains only the new layers during the first `epochs` epochs (config key train.fixbase_epochs): the
    backbone's weights and BN statistics stay as they are. Parameters frozen before stay frozen afterwards."""

    def __init__(self, model: nn.Module, epochs: int) -> None:
        self.backbone = getattr(unwrap(model), "backbone", None)
        if not isinstance(self.backbone, nn.Module):
            raise ConfigError(f"train.fixbase_epochs={epochs}: the model {type(unwrap(model)).__name__} has no "
                              "`backbone` module to freeze; set train.fixbase_epochs=0")
        self.epochs = epochs
        self.trainable = {id(p) for p in self.backbone.parameters() if p.requires_grad}

    def before_epoch(self) -> None:
        t = self.trainer
        frozen = t.epoch < self.epochs
        t.frozen = [p for p in self.backbone.parameters() if id(p) in self.trainable] if frozen else []
        if frozen:
            self.backbone.eval()
        if not t.dist.enabled:
            # DDP needs a fixed set of parameters with gradients; there the trainer drops t.frozen's grads instead.
            for p in self.backbone.parameters():
                p.requires_grad_(id(p) in self.trainable and not frozen)
