"""Runs assembled from a Config: `train`, `test` and `extract` (what the CLI commands call).

    cfg = load_config("configs/top_db_net/market1501.yaml", ["data.root=DATA"])
    result = train(cfg)                       # or train(cfg, resume="runs/x") to continue
    test(cfg, "runs/x/checkpoints/last.pth")

A training run folder (cfg.output.dir) holds config.yaml (the resolved config), checkpoints/ (last.pth,
epoch_NNN.pth), metrics.jsonl, tensorboard/, results.json and report.html. Under torchrun every process trains
its share; rank 0 alone evaluates and writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from reidkit.config import Config, save_config
from reidkit.engine import distributed
from reidkit.engine.builders import (Printer, RunContext, build_model_from, load_for_eval, local_context,
                                     model_to_device, setup, test_loaders, train_loader, wrap_distributed)
from reidkit.engine.evaluator import EvalResult, format_results
from reidkit.engine.extraction import extract
from reidkit.engine.hooks import CheckpointHook, EvalHook, FixBaseHook, LoggerHook, LossWarmupHook, LRSchedulerHook
from reidkit.engine.optim import apply_settings, build_optimizer, build_scheduler, schedule_settings
from reidkit.engine.run_config import build_dataset_from, check_config, data_label, with_data_model_options
from reidkit.engine.run_folder import (TrainResult, config_for_resume, final_checkpoint, finished_run,
                                       fresh_run_dir, guard_run_dir, load_resume, resolve_resume, resume_folder,
                                       run_folder_of, stamp_final_metrics, with_output_dir,
                                       write_results)
from reidkit.engine.run_report import visualize_run, write_run_report
from reidkit.engine.targets import eval_targets, evaluate_model, evaluate_targets
from reidkit.engine.trainer import Trainer
from reidkit.errors import ConfigError
from reidkit.metrics.attributes import format_attribute_accuracy
from reidkit.utils.io import atomic_write_json
from reidkit.utils.paths import refuse_overlap

# The commands' building blocks, importable from here as before (the CLI, `reidkit demo`, benchmarks, tests).
__all__ = ["Printer", "RunContext", "TestResult", "TrainResult", "build_dataset_from", "build_model_from",
           "check_config", "config_for_resume", "evaluate_model", "extract", "fresh_run_dir", "local_context",
           "resolve_resume", "run_folder_of", "setup", "test", "test_loaders", "train", "with_data_model_options",
           "with_output_dir"]


@dataclass
class TestResult:
    output_dir: Path
    evaluation: EvalResult
    results: Path
    visualizations: list[Path]
    report: Path | None


# ------------------------------------------------------------------------------------------------- train


def train(cfg: Config, *, resume: str | os.PathLike | None = None, into: str | os.PathLike | None = None,
          out: Printer = print, trust_checkpoint: bool = False, loaded: Any = None,
          report_rows: Mapping[str, Mapping[str, float]] | None = None) -> TrainResult:
    """Train (or continue) the configured model; evaluate, checkpoint and log through hooks.

    resume: a run folder or checkpoint to continue. It continues in the folder the checkpoint lies in (RUN for
    RUN/checkpoints/last.pth: a copied run continues in the copy), whatever output.dir says; `into` names
    another folder to continue in, which must hold no earlier run. A finished run (all epochs trained and
    evaluated) is left untouched: the result names its files, with evaluation None. Nothing is written into
    the run folder before the config, the checkpoint and the data have been checked.

    Checkpoints (resume, model.weights, model.pretrained) are read tensors-only unless trust_checkpoint;
    `loaded`: the resume file's content when the caller has read it already (it is not read again);
    `report_rows`: metric rows shown in report.html above the run's own (the demo's untrained baseline)."""
    from reidkit.models.weights import trusting_checkpoints

    check_config(cfg, backbone_weights=resume is None)
    ckpt, ckpt_path, in_place = None, None, False
    with trusting_checkpoints(trust_checkpoint):
        if resume is not None:
            ckpt_path, ckpt = load_resume(resume, loaded=loaded)
            cfg, in_place, note = resume_folder(cfg, ckpt_path, into)
            finished = finished_run(cfg, ckpt, out) if in_place else None
            if finished is not None:
                return finished
            if note:
                out(note)
        elif into is not None:
            cfg = with_output_dir(cfg, into)
        ctx = setup(cfg)
        try:
            return _train(cfg, ctx, ckpt, ckpt_path, out, in_place=in_place, report_rows=report_rows)
        finally:
            distributed.cleanup()


def _train(cfg: Config, ctx: RunContext, ckpt: Mapping[str, Any] | None, ckpt_path: Path | None,
           out: Printer, *, in_place: bool, report_rows: Mapping[str, Mapping[str, float]] | None = None
           ) -> TrainResult:
    main = ctx.dist.is_main
    run_dir = Path(cfg.output.dir)
    if main and not in_place:
        guard_run_dir(run_dir)
    distributed.barrier()
    dataset = build_dataset_from(cfg)
    cfg = with_data_model_options(cfg, dataset)
    if main:
        out(f"{data_label(cfg)}: {dataset.describe_training()} of {dataset.num_train_pids} identities, "
            f"{len(dataset.query)} query, {len(dataset.gallery)} gallery")
    targets = eval_targets(cfg, dataset)
    model = model_to_device(build_model_from(cfg, dataset.num_train_pids, pretrained=ckpt is None), cfg, ctx)

    def run_evaluation(module: nn.Module) -> dict[str, float]:
        return evaluate_targets(module, cfg, ctx, targets).flat()

    logger = LoggerHook(run_dir, tensorboard=cfg.output.tensorboard, progress=cfg.output.progress,
                        log_period=cfg.train.log_period)
    trainer = _build_trainer(cfg, ctx, model, train_loader(cfg, dataset, ctx),
                             [EvalHook(run_evaluation, cfg.test.eval_period, final=False), logger])
    if ckpt is not None:
        _resume_trainer(trainer, ckpt, ckpt_path, cfg, out if main else _silent)
    if main:  # everything is checked: from here on the run folder is written
        save_config(cfg, run_dir / "config.yaml")
        out(f"training {cfg.model.name} ({cfg.model.backbone}) for {cfg.train.epochs} epochs on {ctx.device}"
            + (f" x {ctx.dist.world_size} processes" if ctx.dist.enabled else "") + f"; run folder {run_dir}")
    trainer.train()
    # The last epoch's checkpoint is on disk: an evaluation that fails here costs no training.
    final = final_checkpoint(run_dir, cfg.train.epochs)
    result = evaluate_targets(model, cfg, ctx, targets) if main else None
    distributed.barrier()
    if not main:
        return TrainResult(run_dir, final, logger.history_path, None, None, result)
    logger.record_evaluation(cfg.train.epochs, result.flat())
    stamp_final_metrics(run_dir, cfg.train.epochs, result.flat())
    results_path = write_results(run_dir / "results.json", cfg, final, result)
    out(format_results(result, f"{cfg.model.name} on {data_label(cfg)}"))
    if format_attribute_accuracy(result.extra):
        out(format_attribute_accuracy(result.extra))
    report = None
    if cfg.output.report:
        report = write_run_report(run_dir, cfg, result, model, targets, ctx, history=logger.history_path,
                                  rows_before=report_rows)
    return TrainResult(run_dir, final, logger.history_path, results_path, report, result)


def _silent(_: str) -> None: ...


def _build_trainer(cfg: Config, ctx: RunContext, model: nn.Module, loader: Any, hooks: list[Any]) -> Trainer:
    """The Trainer of cfg with the loss, optimizer, schedule and checkpoints; `hooks` (evaluation, logging)
    come after the schedule and checkpoint hooks (see engine.hooks for why)."""
    from reidkit.losses import build_model_criterion

    criterion = build_model_criterion(model, weights=cfg.loss.weights, margin=cfg.loss.margin,
                                      soft_margin=cfg.loss.soft_margin, metric=cfg.loss.metric,
                                      label_smooth=cfg.loss.label_smooth,
                                      include_self=cfg.loss.include_self).to(ctx.device)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.train.epochs)
    checkpoints = CheckpointHook(Path(cfg.output.dir) / "checkpoints", period=cfg.checkpoint.period,
                                 save_last=cfg.checkpoint.save_last, config=cfg.to_dict())
    hooks = [LRSchedulerHook(scheduler), checkpoints, *hooks]
    if cfg.loss.warmup_epochs:
        hooks.insert(0, LossWarmupHook(cfg.loss.warmup_epochs))
    if cfg.train.fixbase_epochs:
        hooks.insert(0, FixBaseHook(model, cfg.train.fixbase_epochs))
    return Trainer(
        wrap_distributed(model, ctx), criterion, optimizer, loader, epochs=cfg.train.epochs, device=ctx.device,
        scheduler=scheduler, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        accumulate_steps=cfg.train.accumulate_steps,
        grad_clip=cfg.train.grad_clip, dist=ctx.dist, hooks=hooks,
    )


def _resume_trainer(trainer: Trainer, ckpt: Mapping[str, Any], ckpt_path: Path, cfg: Config, out: Printer) -> None:
    """The checkpoint's state into the trainer. Where the config's optimiser or schedule settings differ from
    the checkpoint's, the config's apply from here on (they are what config.yaml records), and are named."""
    stored = ckpt.get("config") if isinstance(ckpt.get("config"), Mapping) else {}
    trained_with = (stored.get("optim") or {}).get("name")
    if trained_with and trained_with != cfg.optim.name:
        raise ConfigError(f"optim.name={cfg.optim.name!r}: {ckpt_path} was trained with {trained_with!r}, whose state "
                          f"does not carry over to another optimizer; resume with optim.name={trained_with}, or start "
                          f"a new run from its weights with model.weights={ckpt_path}")
    settings = schedule_settings(trainer.optimizer, trainer.scheduler)
    trainer.resume(ckpt, source=str(ckpt_path))
    done = trainer.start_epoch
    if done == cfg.train.epochs:
        out(f"resuming {ckpt_path}: all {done} epochs done, the final evaluation is missing: evaluating")
    else:
        out(f"resuming {ckpt_path}: {done} epochs done"
            + (f", {trainer.start_iter} iterations into the next" if trainer.start_iter else ""))
    if apply_settings(settings, trainer.optimizer, trainer.scheduler):
        changes = _setting_changes(stored, cfg) or ["the config's (they differ from the checkpoint's)"]
        out("resume: changed optimiser/schedule settings apply from here on (config.yaml records them): "
            + ", ".join(changes))


def _setting_changes(stored: Mapping[str, Any], cfg: Config) -> list[str]:
    """'key: old -> new' for the optim.* and schedule.* keys (and train.epochs, which shapes a cosine schedule)
    that differ between the checkpoint's stored config and cfg."""
    now = cfg.to_dict()
    keys = [(section, key) for section in ("optim", "schedule") for key in now[section]]
    if cfg.schedule.name == "cosine":
        keys.append(("train", "epochs"))
    changes = []
    for section, key in keys:
        before, after = (stored.get(section) or {}).get(key), now[section][key]
        if before is not None and _plain(before) != _plain(after):
            changes.append(f"{section}.{key}: {before} -> {after}")
    return changes


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


# -------------------------------------------------------------------------------------------------- test


def test(cfg: Config, weights: str | os.PathLike, *, out: Printer = print, trust_checkpoint: bool = False,
         loaded: Any = None) -> TestResult:
    """Evaluate `weights` on the configured dataset's query/gallery, or on each of test.targets (one table per
    target plus the mean), with and without re-ranking per cfg.test.rerank; draw the ranked lists asked for
    (cfg.test.vis*); write results and a report into <output.dir>/test. `weights` is read tensors-only unless
    trust_checkpoint; `loaded`: its content when the caller has read it already. An output folder inside the
    dataset, or holding the weights, is refused before any work; the visualizations of an earlier test there are replaced (renew_folder)."""
    check_config(cfg)
    out_dir = Path(cfg.output.dir) / "test"
    refuse_overlap(out_dir, {"--weights file": weights}, flag="test output", folder=True)
    ctx = local_context(cfg)
    training = None if cfg.test.targets else build_dataset_from(cfg)
    targets = eval_targets(cfg, training)
    for target in targets:
        refuse_overlap(out_dir, {"dataset folder": getattr(target.dataset, "root", None)}, flag="test output",
                       folder=True)
    dataset = training if training is not None else targets[0].dataset
    cfg = with_data_model_options(cfg, dataset)
    model = model_to_device(load_for_eval(cfg, weights, dataset.num_train_pids, loaded=loaded,
                                          trust_checkpoint=trust_checkpoint), cfg, ctx)
    result = evaluate_targets(model, cfg, ctx, targets)
    labels = " + ".join(t.label for t in targets)
    out(format_results(result, f"{Path(weights).name} on {labels}"))
    if format_attribute_accuracy(result.extra):
        out(format_attribute_accuracy(result.extra))
    results = out_dir / "results.json"
    atomic_write_json(results, {"weights": os.fspath(weights), "dataset": labels, **result.record(),
                                "config": cfg.to_dict()})
    drawn = visualize_run(cfg, model, targets, result, out_dir, ctx, out)
    if drawn:
        out(f"wrote {len(drawn)} ranked lists under {out_dir / 'visualizations'}")
    report = write_run_report(out_dir, cfg, result, model, targets, ctx) if cfg.output.report else None
    return TestResult(out_dir, result, results, drawn, report)
