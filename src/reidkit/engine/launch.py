"""Runs assembled from a Config: `train`, `test` and `extract` (what the CLI commands call).

    cfg = load_config("configs/top_db_net/market1501.yaml", ["data.root=DATA"])
    result = train(cfg)                       # or train(cfg, resume="runs/x") to continue
    test(cfg, "runs/x/checkpoints/last.pth")

A training run folder (cfg.output.dir) holds config.yaml (the resolved config), checkpoints/ (last.pth,
epoch_NNN.pth), metrics.jsonl, tensorboard/, results.json and report.html. Under torchrun every process trains
its share; rank 0 alone evaluates and writes files.
"""
from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from reidkit.config import Config, config_from_dict, save_config
from reidkit.engine import distributed
from reidkit.engine.checkpoint import load_checkpoint, seed_everything, unwrap
from reidkit.engine.distributed import DistInfo
from reidkit.engine.evaluator import EvalResult, combine_results, evaluate, format_results, protocol_samples
from reidkit.engine.hooks import CheckpointHook, EvalHook, LoggerHook, LossWarmupHook, LRSchedulerHook
from reidkit.engine.optim import apply_settings, build_optimizer, build_scheduler, schedule_settings
from reidkit.engine.trainer import Trainer
from reidkit.errors import CheckpointError, ConfigError, DatasetError, RegistryError
from reidkit.utils.io import atomic_open, atomic_write_json
from reidkit.utils.paths import refuse_overlap, renew_folder

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunContext:
    dist: DistInfo
    device: torch.device


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    history: Path
    results: Path | None
    report: Path | None
    evaluation: EvalResult | None


@dataclass
class TestResult:
    output_dir: Path
    evaluation: EvalResult
    results: Path
    visualizations: list[Path]
    report: Path | None


# ------------------------------------------------------------------------------------------------- setup


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


def _registry_check(registry: Any, name: str, key: str) -> None:
    try:
        registry.get(name)
    except RegistryError as error:
        raise ConfigError(f"{key}: {error}") from None


def _check_options(section: str, kind: str, name: str, given: Mapping[str, Any], accepted: Mapping[str, Any]
                   ) -> None:
    for key in given:
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f"; did you mean '{section}.{close[0]}'?" if close else ""
            raise ConfigError(f"{section}.{key}: {kind} {name!r} has no option {key!r}{hint} "
                              f"(its options and defaults: {accepted})")


def check_config(cfg: Config) -> None:
    """Before any data is read: names that the config refers to exist, model.options and data.options are
    options of the model and the dataset, the schedule is one the run can follow, and a batch holds two
    identities at least. (Each value's own bounds are checked as it is set, beside its field in config.py.)"""
    from reidkit.data import DATASETS, TRANSFORM_RECIPES, dataset_options
    from reidkit.data.joint import target_specs, training_specs
    from reidkit.engine.optim import schedule_factor
    from reidkit.models import BACKBONES, MODELS, model_options

    _registry_check(DATASETS, cfg.data.name, "data.name")
    _registry_check(TRANSFORM_RECIPES, cfg.data.recipe, "data.recipe")
    _registry_check(MODELS, cfg.model.name, "model.name")
    _registry_check(BACKBONES, cfg.model.backbone, "model.backbone")
    _check_options("model.options", "model", cfg.model.name, cfg.model.options, model_options(cfg.model.name))
    _check_options("data.options", "dataset", cfg.data.name, cfg.data.options, dataset_options(cfg.data.name))
    training_specs(cfg.data), target_specs(cfg)  # data.sources, test.targets: names, roots, options
    schedule_factor(cfg.schedule, cfg.train.epochs)  # raises ConfigError naming the schedule key
    if cfg.train.batch_size % cfg.data.num_instances:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be a multiple of "
                          f"data.num_instances={cfg.data.num_instances}")
    if cfg.data.sampler == "identity" and cfg.train.batch_size // cfg.data.num_instances < 2:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} with data.num_instances="
                          f"{cfg.data.num_instances} makes batches of one identity, where the triplet loss has no "
                          "negative; use a batch_size of at least 2 x num_instances")


def check_config_against_data(cfg: Config, dataset: Any) -> None:
    """Config values that depend on the dataset's sizes, checked once it is read (before any training)."""
    gallery = len(dataset.gallery)
    if cfg.test.rerank and cfg.test.k1 >= gallery:
        raise ConfigError(f"test.k1={cfg.test.k1} is not below the gallery size ({gallery} items of "
                          f"{getattr(dataset, 'name', cfg.data.name)}): the k-reciprocal sets would hold (nearly) "
                          f"every item, which leaves nothing for re-ranking to find; set test.k1 below {gallery} "
                          f"(e.g. {max(1, gallery // 2)}) or test.rerank=false")


def build_dataset_from(cfg: Config) -> Any:
    """The training data: data.name at data.root, or the union of data.sources (reidkit.data.joint)."""
    from reidkit.data.joint import build_joint_dataset, training_specs

    return build_joint_dataset(training_specs(cfg.data))


def data_label(cfg: Config) -> str:
    """How tables name the training data: data.name, or the sources' labels joined by ' + '."""
    from reidkit.data.joint import training_specs

    return " + ".join(spec.label for spec in training_specs(cfg.data))


@dataclass
class EvalTarget:
    label: str
    dataset: Any
    loaders: tuple[Any, Any]


def eval_targets(cfg: Config, training: Any) -> list[EvalTarget]:
    """The datasets evaluated, each with its query/gallery loaders: test.targets, else the training data (each
    source of a joint training on its own). `training` (None: not built) is reused rather than read again."""
    from reidkit.data.joint import JointDataset, target_specs

    if cfg.test.targets or training is None:
        parts = [(spec.label, spec.build()) for spec in target_specs(cfg)]
    else:
        parts = training.parts if isinstance(training, JointDataset) else [(data_label(cfg), training)]
    for _, dataset in parts:
        check_config_against_data(cfg, dataset)
    return [EvalTarget(label, dataset, test_loaders(cfg, dataset)) for label, dataset in parts]


def evaluate_targets(model: nn.Module, cfg: Config, ctx: RunContext, targets: Sequence[EvalTarget]) -> EvalResult:
    """evaluate_model on each target; several give one result holding their mean and each one's (.targets)."""
    results = {t.label: evaluate_model(model, cfg, ctx, t.loaders, num_gallery=len(t.dataset.gallery),
                                       dataset=t.dataset) for t in targets}
    return next(iter(results.values())) if len(results) == 1 else combine_results(results)


def target_results(result: EvalResult, targets: Sequence[EvalTarget]) -> list[tuple[EvalTarget, EvalResult]]:
    return [(t, result.targets[t.label]) for t in targets] if result.targets else [(targets[0], result)]


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
    """Query and gallery loaders: images, or for video datasets every test chunk of every tracklet (the
    evaluator pools a tracklet's chunk features through the loader's dataset)."""
    from reidkit.data import build_test_loader
    from reidkit.data.video import VideoDataset, build_video_test_loader

    common = {"height": cfg.data.height, "width": cfg.data.width, "batch_size": cfg.test.batch_size,
              "workers": cfg.data.workers, "recipe": cfg.data.recipe}
    if isinstance(dataset, VideoDataset):
        video = {"seq_len": cfg.data.seq_len, "max_chunks": cfg.data.max_chunks, **common}
        return tuple(shield_workers(build_video_test_loader(dataset, s, **video)) for s in ("query", "gallery"))
    return (shield_workers(build_test_loader(dataset.query, **common)),
            shield_workers(build_test_loader(dataset.gallery, **common)))


def evaluate_model(model: nn.Module, cfg: Config, ctx: RunContext, loaders: tuple[Any, Any], *,
                   rerank: bool | None = None, num_gallery: int | None = None, dataset: Any = None) -> EvalResult:
    """Metrics of `model` on the query/gallery loaders with the test settings of `cfg` (and the attribute
    accuracy when `dataset`, the loaders' dataset, has attribute labels and the model attribute heads), under
    the dataset's evaluation protocol (its eval_protocol; market without a dataset)."""
    test = cfg.test
    max_rank = min(test.max_rank, num_gallery) if num_gallery else test.max_rank
    result = evaluate(
        unwrap(model), *loaders, device=ctx.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        flip=test.flip, progress=cfg.output.progress and ctx.dist.is_main, metric=test.metric,
        normalize=test.normalize, rerank=test.rerank if rerank is None else rerank, max_rank=max_rank,
        k1=test.k1, k2=test.k2, lambda_value=test.lambda_value, protocol=getattr(dataset, "eval_protocol", "market"),
    )
    result.extra.update(attribute_accuracy(unwrap(model), loaders, dataset, ctx))
    return result


def attribute_accuracy(model: nn.Module, loaders: tuple[Any, Any], dataset: Any, ctx: RunContext) -> dict[str, float]:
    """Attribute accuracy on the query + gallery tracklets against the majority-class baseline ("attr/..."
    keys), for models with attribute heads on datasets with attribute labels; {} otherwise."""
    if not callable(getattr(model, "predict_attributes", None)) or getattr(dataset, "attribute_schema", None) is None:
        return {}
    from reidkit.models.asta import attribute_metrics

    return attribute_metrics(model, dict(zip(("query", "gallery"), loaders)), dataset, device=ctx.device)


def format_attributes(metrics: Mapping[str, float]) -> str | None:
    """One line of attribute accuracy against its baseline, or None without attribute metrics."""
    if "attr/accuracy" not in metrics:
        return None
    count = sum(1 for k in metrics if k.startswith("attr/") and k.count("/") == 2)
    return (f"attribute accuracy {metrics['attr/accuracy']:.1%} (majority-class baseline "
            f"{metrics['attr/majority']:.1%}; mean over {count} attributes, query + gallery tracklets)")


def with_data_model_options(cfg: Config, dataset: Any) -> Config:
    """`cfg` with the model options that follow from the data filled in: frame_size = [data.height, data.width]
    and attribute_dims = the dataset's attribute schema (sizes of the attribute heads), for models that take
    them. A config value that contradicts the data is a ConfigError; so is an image model on a video dataset."""
    from reidkit.data.video import VideoDataset
    from reidkit.models import MODELS, model_options
    from reidkit.models.video import VideoReidModel

    name = cfg.model.name
    if isinstance(dataset, VideoDataset) and not issubclass(MODELS.get(name), VideoReidModel):
        raise ConfigError(f"model.name={name!r} is an image model but data.name={cfg.data.name!r} holds video "
                          "tracklets; use a video model: video_tp, video_ta, video_rnn or asta")
    accepted, derived = model_options(name), {}
    if "frame_size" in accepted:
        derived["frame_size"] = [cfg.data.height, cfg.data.width]
    if "attribute_dims" in accepted:
        schema = getattr(dataset, "attribute_schema", None)
        if schema is None:
            raise ConfigError(f"model.name={name!r} has attribute heads but data.name={cfg.data.name!r} has no "
                              "attribute labels; use a dataset with attributes (mars, dukemtmcvidreid, "
                              "synthetic_video) or a model without them (video_tp, video_ta, video_rnn)")
        derived["attribute_dims"] = dict(schema.group_dims)
    for key, value in derived.items():
        given = cfg.model.options.get(key)
        if given is not None and (list(given) if isinstance(given, tuple) else given) != value:
            raise ConfigError(f"model.options.{key}={given!r} does not match the data ({value!r} from "
                              f"{'data.height, data.width' if key == 'frame_size' else 'the dataset schema'}); "
                              "set it to that or leave it out")
    if all(key in cfg.model.options for key in derived):
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.model.options.update({k: v for k, v in derived.items() if k not in cfg.model.options})
    return cfg


def _to_device(model: nn.Module, cfg: Config, ctx: RunContext) -> nn.Module:
    model.to(ctx.device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


# ------------------------------------------------------------------------------------------------- train


def resolve_resume(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (-> its checkpoints/last.pth)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.pth", path / "last.pth"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"--resume {path}: no checkpoints/last.pth in this folder")
    if not path.is_file():
        raise CheckpointError(f"--resume {path}: no such checkpoint file or run folder")
    return path


# What a run folder receives (train, and `reidkit test` into <run>/test): any of them marks an earlier run.
RUN_ARTEFACTS = ("checkpoints", "config.yaml", "metrics.jsonl", "results.json", "tensorboard", "report.html",
                 "report_files", "test")


def run_artefacts(run_dir: str | os.PathLike) -> list[str]:
    """The names of RUN_ARTEFACTS present in `run_dir` (a file, a link, or a folder that is not empty)."""
    found = []
    for name in RUN_ARTEFACTS:
        path = Path(run_dir) / name
        try:
            present = path.is_symlink() or path.is_file() or (path.is_dir() and any(path.iterdir()))
        except OSError:  # unreadable: assume it holds something
            present = True
        if present:
            found.append(name)
    return found


def fresh_run_dir(base: str | os.PathLike) -> Path:
    """`base` if it holds no run artefact (run_artefacts) yet, else the first of base_2, base_3, ... that holds none."""
    base = Path(base)
    candidate, n = base, 1
    while run_artefacts(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def _guard_run_dir(run_dir: Path) -> None:
    """A new run (or a resume into another folder) starts only in a folder without an earlier run's files."""
    found = run_artefacts(run_dir)
    if not found:
        return
    advice = (f"pass --resume {run_dir} to continue it, or choose another folder with --output"
              if (run_dir / "checkpoints" / "last.pth").is_file()
              else "choose another folder with --output, or move those files away")
    raise ConfigError(f"output.dir {run_dir} already holds {', '.join(found)} of an earlier run: {advice} "
                      "(nothing was overwritten)")


def run_folder_of(checkpoint: str | os.PathLike) -> Path:
    """The run folder a checkpoint belongs to: RUN for RUN/checkpoints/x.pth, else the file's folder."""
    path = Path(checkpoint).expanduser()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _train_loader(cfg: Config, dataset: Any, ctx: RunContext) -> Any:
    """P x K batches of images, or for video datasets of random clips of data.seq_len frames (the identity
    sampler on tracklets, with the tracklets' attribute codes)."""
    from reidkit.data import build_train_loader
    from reidkit.data.video import VideoDataset, build_video_train_loader

    common = {"height": cfg.data.height, "width": cfg.data.width, "batch_size": cfg.train.batch_size,
              "num_instances": cfg.data.num_instances, "recipe": cfg.data.recipe, "workers": cfg.data.workers,
              "seed": cfg.train.seed, "rank": ctx.dist.rank, "world_size": ctx.dist.world_size}
    if not isinstance(dataset, VideoDataset):
        return shield_workers(build_train_loader(dataset.train, sampler=cfg.data.sampler, **common))
    if cfg.data.sampler != "identity":
        raise ConfigError(f"data.sampler={cfg.data.sampler!r}: video datasets train with the tracklet identity "
                          "sampler; set data.sampler=identity")
    return shield_workers(build_video_train_loader(dataset, seq_len=cfg.data.seq_len, per_frame=cfg.data.per_frame,
                                                   **common))


def _wrap_distributed(model: nn.Module, ctx: RunContext) -> nn.Module:
    if not ctx.dist.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def load_resume(resume: str | os.PathLike, *, loaded: Any = None) -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, its validated content); `loaded`: the content already read from it."""
    path = resolve_resume(resume)
    return path, load_checkpoint(path, for_resume=True, loaded=loaded)


def config_for_resume(ckpt: Mapping[str, Any], source: Path) -> Config:
    if not ckpt.get("config"):
        raise CheckpointError(f"{source}: holds no config; pass --config with the run's config.yaml")
    return config_from_dict(ckpt["config"], source=f"{source} (stored config)")


def train(cfg: Config, *, resume: str | os.PathLike | None = None, into: str | os.PathLike | None = None,
          out: Printer = print, trust_checkpoint: bool = False, loaded: Any = None) -> TrainResult:
    """Train (or continue) the configured model; evaluate, checkpoint and log through hooks.

    resume: a run folder or checkpoint to continue. It continues in the folder the checkpoint lies in (RUN for
    RUN/checkpoints/last.pth: a copied run continues in the copy), whatever output.dir says; `into` names
    another folder to continue in, which must hold no earlier run. A finished run (all epochs trained and
    evaluated) is left untouched: the result names its files, with evaluation None. Nothing is written into
    the run folder before the config, the checkpoint and the data have been checked.

    Checkpoints (resume, model.weights, model.pretrained) are read tensors-only unless trust_checkpoint;
    `loaded`: the resume file's content when the caller has read it already (it is not read again)."""
    from reidkit.models.weights import trusting_checkpoints

    check_config(cfg)
    ckpt, ckpt_path, in_place = None, None, False
    with trusting_checkpoints(trust_checkpoint):
        if resume is not None:
            ckpt_path, ckpt = load_resume(resume, loaded=loaded)
            cfg, in_place, note = _resume_folder(cfg, ckpt_path, into)
            finished = _finished_run(cfg, ckpt, out) if in_place else None
            if finished is not None:
                return finished
            if note:
                out(note)
        elif into is not None:
            cfg = with_output_dir(cfg, into)
        ctx = setup(cfg)
        try:
            return _train(cfg, ctx, ckpt, ckpt_path, out, in_place=in_place)
        finally:
            distributed.cleanup()


def with_output_dir(cfg: Config, folder: str | os.PathLike) -> Config:
    """A copy of cfg with output.dir = folder."""
    cfg = copy.deepcopy(cfg)
    cfg.output.dir = os.fspath(folder)
    return cfg


def _resume_folder(cfg: Config, ckpt_path: Path, into: str | os.PathLike | None) -> tuple[Config, bool, str | None]:
    """(cfg with output.dir = the folder the run continues in, whether that is the checkpoint's own run folder,
    a note when that is not the config's output.dir)."""
    own = run_folder_of(ckpt_path) if ckpt_path.parent.name == "checkpoints" else None
    target = Path(into) if into is not None else own if own is not None else Path(cfg.output.dir)
    in_place = own is not None and os.path.realpath(target) == os.path.realpath(own)
    last = target / "checkpoints" / "last.pth"
    if in_place and last.is_file() and not os.path.samefile(last, ckpt_path):
        raise ConfigError(f"--resume {ckpt_path}: continuing it in {own} would replace {last} and the records after "
                          f"its epoch; continue it in a new folder with --output NEW (nothing was overwritten)")
    note = None
    if into is None and os.path.realpath(cfg.output.dir) != os.path.realpath(target):
        note = f"continuing in {target}, the folder of {ckpt_path.name} (not output.dir {cfg.output.dir})"
    return with_output_dir(cfg, target), in_place, note


def _finished_run(cfg: Config, ckpt: Mapping[str, Any], out: Printer) -> TrainResult | None:
    """The result of a run whose checkpoint has all train.epochs done and whose results.json holds the final
    evaluation of that epoch; None when there is something left to do (train, or redo the final evaluation)."""
    run_dir, done = Path(cfg.output.dir), int(ckpt["epoch"])
    if done != cfg.train.epochs or int(ckpt.get("iteration", 0)):
        return None
    results = run_dir / "results.json"
    try:
        saved = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not saved.get("metrics") or saved.get("epoch") != done:
        return None
    report = run_dir / "report.html"
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one line, from the main process
        out(f"{run_dir}: finished: all {done} epochs trained and evaluated (results in {results}); nothing to do, "
            f"nothing was changed. To train further, resume with train.epochs=N, N > {done}")
    return TrainResult(run_dir, _final_checkpoint(run_dir, done), run_dir / "metrics.jsonl", results,
                       report if report.is_file() else None, None)


def _final_checkpoint(run_dir: Path, epochs: int) -> Path:
    periodic = run_dir / "checkpoints" / f"epoch_{epochs:03d}.pth"
    return periodic if periodic.is_file() else run_dir / "checkpoints" / "last.pth"


def _train(cfg: Config, ctx: RunContext, ckpt: Mapping[str, Any] | None, ckpt_path: Path | None,
           out: Printer, *, in_place: bool) -> TrainResult:
    main = ctx.dist.is_main
    run_dir = Path(cfg.output.dir)
    if main and not in_place:
        _guard_run_dir(run_dir)
    distributed.barrier()
    dataset = build_dataset_from(cfg)
    cfg = with_data_model_options(cfg, dataset)
    if main:
        out(f"{data_label(cfg)}: {_sample_count(dataset)} of {dataset.num_train_pids} identities, "
            f"{len(dataset.query)} query, {len(dataset.gallery)} gallery")
    targets = eval_targets(cfg, dataset)
    model = _to_device(build_model_from(cfg, dataset.num_train_pids, pretrained=ckpt is None), cfg, ctx)

    def run_evaluation(module: nn.Module) -> dict[str, float]:
        return evaluate_targets(module, cfg, ctx, targets).flat()

    logger = LoggerHook(run_dir, tensorboard=cfg.output.tensorboard, progress=cfg.output.progress,
                        log_period=cfg.train.log_period)
    trainer = _build_trainer(cfg, ctx, model, _train_loader(cfg, dataset, ctx),
                             [EvalHook(run_evaluation, cfg.test.eval_period, final=False), logger])
    if ckpt is not None:
        _resume_trainer(trainer, ckpt, ckpt_path, cfg, out if main else _silent)
    if main:  # everything is checked: from here on the run folder is written
        save_config(cfg, run_dir / "config.yaml")
        out(f"training {cfg.model.name} ({cfg.model.backbone}) for {cfg.train.epochs} epochs on {ctx.device}"
            + (f" x {ctx.dist.world_size} processes" if ctx.dist.enabled else "") + f"; run folder {run_dir}")
    trainer.train()
    # The last epoch's checkpoint is on disk: an evaluation that fails here costs no training.
    final = _final_checkpoint(run_dir, cfg.train.epochs)
    result = evaluate_targets(model, cfg, ctx, targets) if main else None
    distributed.barrier()
    if not main:
        return TrainResult(run_dir, final, logger.history_path, None, None, result)
    logger.record_evaluation(cfg.train.epochs, result.flat())
    results_path = _write_results(run_dir / "results.json", cfg, final, result)
    out(format_results(result, f"{cfg.model.name} on {data_label(cfg)}"))
    if format_attributes(result.extra):
        out(format_attributes(result.extra))
    report = None
    if cfg.output.report:
        report = write_run_report(run_dir, cfg, result, model, targets, ctx, history=logger.history_path)
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
    return Trainer(
        _wrap_distributed(model, ctx), criterion, optimizer, loader, epochs=cfg.train.epochs, device=ctx.device,
        scheduler=scheduler, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        accumulate_steps=cfg.train.accumulate_steps, fixbase_epochs=cfg.train.fixbase_epochs,
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


def _sample_count(dataset: Any) -> str:
    from reidkit.data.video import VideoDataset

    if isinstance(dataset, VideoDataset):
        return f"{len(dataset.train)} training tracklets ({dataset.num_train_frames} frames)"
    return f"{len(dataset.train)} training images"


def _write_results(path: Path, cfg: Config, checkpoint: Path, result: EvalResult) -> Path:
    """results.json: the final evaluation of the run's last epoch (`epoch` marks the run finished)."""
    atomic_write_json(path, {"model": cfg.model.name, "dataset": data_label(cfg), "checkpoint": str(checkpoint),
                             "epoch": cfg.train.epochs, **result.record()})
    return path


def ranked_samples(target: EvalTarget) -> tuple[list, list]:
    """The target's query and gallery with the camid field holding its protocol's junk key, as the ranked-list
    drawings (which skip same-identity same-camid items) need."""
    return protocol_samples(target.dataset.query, target.dataset.gallery,
                            getattr(target.dataset, "eval_protocol", "market"))


def _report_figures(run_dir: Path, cfg: Config, result: EvalResult, model: nn.Module, targets: Sequence[EvalTarget],
                    ctx: RunContext) -> tuple[list, dict]:
    """(best/worst ranked lists, CMC curves) of each target, labelled by target when there are several."""
    from reidkit.data import build_transforms
    from reidkit.visualize import report_samples

    transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
    samples, cmc = [], {}
    for target, part in target_results(result, targets):
        prefix = f"{target.label}: " if result.targets else ""
        drawn = report_samples(unwrap(model), *ranked_samples(target), part.distmat, run_dir, transform=transform,
                               device=ctx.device, dataset_name=target.label, batch_size=cfg.test.batch_size)
        samples += [(prefix + caption, path) for caption, path in drawn]
        cmc[prefix + "without re-ranking"] = part.cmc
        if part.cmc_reranked is not None:
            cmc[prefix + "with re-ranking"] = part.cmc_reranked
    return samples, cmc


def write_run_report(run_dir: Path, cfg: Config, result: EvalResult, model: nn.Module,
                     targets: Sequence[EvalTarget], ctx: RunContext, *, history: Path | None = None) -> Path | None:
    """report.html with the metrics (one table per target plus their mean), CMC and history plots and the
    best/worst ranked lists of each target. A failure here is reported as a warning: the checkpoint and results
    are already written."""
    try:
        from reidkit.visualize import write_report

        samples, cmc = _report_figures(run_dir, cfg, result, model, targets, ctx)
        labels = " + ".join(t.label for t in targets)
        return write_report(run_dir, config=cfg.to_dict(), metrics=result.table_rows(),
                            history_path=history if history and history.is_file() else None, cmc=cmc,
                            ranked_images=samples, title=f"reidkit: {cfg.model.name} on {labels}")
    except Exception as error:  # noqa: BLE001  (see the docstring)
        warnings.warn(f"could not write {run_dir / 'report.html'}: {type(error).__name__}: {error}", stacklevel=2)
        return None


# -------------------------------------------------------------------------------------------------- test


def _load_for_eval(cfg: Config, weights: str | os.PathLike, default_classes: int, *, loaded: Any = None,
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


def vis_modes(cfg: Config) -> list[str]:
    return [m for m in ("visrank", "visrankactiv", "visrankactivthr", "visdrop") if getattr(cfg.test, m)]


def test(cfg: Config, weights: str | os.PathLike, *, out: Printer = print, trust_checkpoint: bool = False,
         loaded: Any = None) -> TestResult:
    """Evaluate `weights` on the configured dataset's query/gallery, or on each of test.targets (one table per
    target plus the mean), with and without re-ranking per cfg.test.rerank; draw the ranked lists asked for
    (cfg.test.vis*); write results and a report into <output.dir>/test. `weights` is read tensors-only unless
    trust_checkpoint; `loaded`: its content when the caller has read it already. An output folder inside the dataset, or holding the weights, is refused
    before any work; the visualizations of an earlier test there are replaced (renew_folder)."""
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
    model = _to_device(_load_for_eval(cfg, weights, dataset.num_train_pids, loaded=loaded,
                                      trust_checkpoint=trust_checkpoint), cfg, ctx)
    result = evaluate_targets(model, cfg, ctx, targets)
    labels = " + ".join(t.label for t in targets)
    out(format_results(result, f"{Path(weights).name} on {labels}"))
    if format_attributes(result.extra):
        out(format_attributes(result.extra))
    results = out_dir / "results.json"
    atomic_write_json(results, {"weights": os.fspath(weights), "dataset": labels, **result.record(),
                                "config": cfg.to_dict()})
    drawn = _visualize(cfg, model, targets, result, out_dir, ctx, out)
    if drawn:
        out(f"wrote {len(drawn)} ranked lists under {out_dir / 'visualizations'}")
    report = write_run_report(out_dir, cfg, result, model, targets, ctx) if cfg.output.report else None
    return TestResult(out_dir, result, results, drawn, report)


def _visualize(cfg: Config, model: nn.Module, targets: Sequence[EvalTarget], result: EvalResult, out_dir: Path,
               ctx: RunContext, out: Printer) -> list[Path]:
    """The ranked lists asked for (of each target), in a renewed <out_dir>/visualizations: never mixed with an
    earlier test's."""
    modes, folder = vis_modes(cfg), out_dir / "visualizations"
    if not modes and not os.path.lexists(folder):
        return []
    from reidkit.data import build_transforms
    from reidkit.visualize import visualize_test_run

    transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
    drawn, kept = renew_folder(folder, lambda stage: [path for target, part in target_results(result, targets)
                                                      for path in visualize_test_run(
        unwrap(model), *ranked_samples(target), part.distmat, stage, modes=modes,
        topk=cfg.test.topk, maskthr=cfg.test.maskthr, transform=transform, device=ctx.device,
        dataset_name=target.label, batch_size=cfg.test.batch_size, num_queries=cfg.test.vis_queries,
    )] if modes else [])
    if kept is not None:
        out(f"kept the files in {folder} that no earlier reidkit test wrote: they are now in {kept}")
    return drawn


# ----------------------------------------------------------------------------------------------- extract

FEATURE_FORMATS = (".npz", ".mat", ".pt")


def list_images(folder: str | os.PathLike) -> list[Path]:
    from reidkit.data.base import IMAGE_SUFFIXES

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return images


def extract(cfg: Config, weights: str | os.PathLike | Sequence[str | os.PathLike], images: str | os.PathLike | None,
            output: str | os.PathLike, *, out: Printer = print, scales: Sequence[float] = (1.0,),
            model_configs: Sequence[Config] | None = None, trust_checkpoint: bool = False,
            loaded: Sequence[Any] | None = None) -> Path:
    """Eval-mode features into `output`.

    images = a folder: every image under it (recursively, sorted) into .npz (features, paths), .mat (same keys)
    or .pt ({"features": tensor, "paths": list}); paths relative to the folder.
    images = None: the configured dataset's query and gallery into the feature file of `reidkit postprocess`
    (.mat/.npz: query_f, gallery_f, labels, cameras, image areas and names).

    Several weights: each model's L2-normalised features / sqrt(M), concatenated (spec vehicle-aicity.md 2);
    model_configs[i] builds model i (default: cfg for all). `scales` (and cfg.test.flip) are the test-time
    augmentation: each scale is taken from the original image, the views' features summed and L2-normalised.
    Without it (one model, scales (1,)), folder features are the plain (flip-averaged) features, as before.
    The weights are read tensors-only unless trust_checkpoint; `loaded[i]`: the content of weights[i] when the
    caller has read it already.
    """
    output = Path(output)
    if not scales or any(not 0 < s < float("inf") for s in scales):
        raise ConfigError(f"--scales {list(scales)}: expected positive finite side-length factors, e.g. 1 1.1")
    weights = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
    model_configs = list(model_configs) if model_configs else [cfg] * len(weights)
    if not weights or len(model_configs) != len(weights):
        raise ConfigError(f"extract: {len(weights)} weights for {len(model_configs)} model configs")
    for path in weights:
        refuse_overlap(output, {"--weights file": path}, flag="--output")
    if images is not None:
        refuse_overlap(output, {"--images folder": images}, flag="--output")
    load = functools.partial(_load_models, weights, model_configs, loaded=loaded, trust_checkpoint=trust_checkpoint)
    if images is None:
        return _extract_dataset(cfg, load, output, tuple(scales), out)
    if output.suffix not in FEATURE_FORMATS:
        raise ConfigError(f"--output {output}: expected a file ending in {', '.join(FEATURE_FORMATS)}")
    from reidkit.data import build_test_loader

    files = list_images(images)
    ctx = local_context(cfg)
    models = load(1, ctx)
    loader = build_test_loader([(str(p), -1, -1) for p in files], height=cfg.data.height, width=cfg.data.width,
                               batch_size=cfg.test.batch_size, workers=cfg.data.workers, recipe=cfg.data.recipe)
    feats = _folder_features(cfg, models, shield_workers(loader), tuple(scales), ctx)
    relative = [p.relative_to(Path(images).expanduser()).as_posix() for p in files]
    save_features(output, feats, relative)
    out(f"wrote {output}: {len(files)} images x {feats.shape[1]} features")
    return output


def _folder_features(cfg: Config, models: Sequence[nn.Module], loader: Any, scales: tuple[float, ...],
                     ctx: RunContext) -> Any:
    from reidkit.engine.evaluator import extract_features
    from reidkit.postprocess.extraction import TestTimeAugmentation, fuse_features

    options = {"device": ctx.device, "amp": cfg.train.amp, "channels_last": cfg.train.channels_last,
               "desc": "extract" if cfg.output.progress else None}
    if len(models) == 1 and scales == (1.0,):
        return extract_features(models[0], loader, flip=cfg.test.flip, **options).features.numpy()
    return fuse_features([extract_features(TestTimeAugmentation(m, scales, cfg.test.flip), loader,
                                           **options).features.numpy() for m in models])


def _load_models(weights: Sequence[str | os.PathLike], model_configs: Sequence[Config], default_classes: int,
                 ctx: RunContext, *, loaded: Sequence[Any] | None, trust_checkpoint: bool) -> list[nn.Module]:
    contents = list(loaded) if loaded is not None else [None] * len(weights)
    return [_to_device(_load_for_eval(c, w, default_classes, loaded=o, trust_checkpoint=trust_checkpoint), c, ctx)
            for c, w, o in zip(model_configs, weights, contents, strict=True)]


def _extract_dataset(cfg: Config, load: Callable[[int, RunContext], list[nn.Module]], output: Path,
                     scales: tuple[float, ...], out: Printer) -> Path:
    """Query and gallery features of the configured dataset (TTA, fusion) in the post-processing file layout."""
    from reidkit.postprocess.extraction import extract_to_file
    from reidkit.postprocess.feature_files import SUFFIXES

    if output.suffix not in SUFFIXES:
        raise ConfigError(f"--output {output}: a query/gallery feature file ends in {' or '.join(SUFFIXES)}")
    check_config(cfg)
    ctx = local_context(cfg)
    dataset = build_dataset_from(cfg)
    refuse_overlap(output, {"dataset folder": getattr(dataset, "root", None)}, flag="--output")
    models = load(dataset.num_train_pids, ctx)
    query_loader, gallery_loader = test_loaders(cfg, dataset)
    extract_to_file(models, query_loader, gallery_loader, output, scales=scales, flip=cfg.test.flip,
                    device=ctx.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
                    desc="extract" if cfg.output.progress else None)
    out(f"wrote {output}: {len(dataset.query)} query and {len(dataset.gallery)} gallery images of {cfg.data.name} "
        f"x {len(models)} model(s), scales {list(scales)}, flip {cfg.test.flip}")
    return output


def save_features(path: Path, features: Any, paths: list[str]) -> None:
    import numpy as np

    if path.suffix == ".pt":
        from reidkit.utils.io import atomic_torch_save

        atomic_torch_save({"features": torch.from_numpy(features), "paths": paths}, path)
        return
    with atomic_open(path, "wb") as handle:
        if path.suffix == ".npz":
            np.savez(handle, features=features, paths=np.asarray(paths))
        else:
            from scipy.io import savemat

            savemat(handle, {"features": features, "paths": np.asarray(paths, dtype=object)})
