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
from reidkit.engine.evaluator import EvalResult, evaluate, format_table
from reidkit.engine.hooks import CheckpointHook, EvalHook, LoggerHook, LossWarmupHook, LRSchedulerHook
from reidkit.engine.optim import build_optimizer, build_scheduler
from reidkit.engine.trainer import Trainer
from reidkit.errors import CheckpointError, ConfigError, DatasetError, RegistryError
from reidkit.utils.io import atomic_open, atomic_write_json

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


def check_config(cfg: Config) -> None:
    """Names that the config refers to exist, and model.options are options of the model; before any work."""
    from reidkit.data import DATASETS, TRANSFORM_RECIPES
    from reidkit.models import BACKBONES, MODELS, model_options

    _registry_check(DATASETS, cfg.data.name, "data.name")
    _registry_check(TRANSFORM_RECIPES, cfg.data.recipe, "data.recipe")
    _registry_check(MODELS, cfg.model.name, "model.name")
    _registry_check(BACKBONES, cfg.model.backbone, "model.backbone")
    accepted = model_options(cfg.model.name)
    for key in cfg.model.options:
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f"; did you mean 'model.options.{close[0]}'?" if close else ""
            raise ConfigError(f"model.options.{key}: model {cfg.model.name!r} has no option {key!r}{hint} "
                              f"(its options and defaults: {accepted})")
    if cfg.train.batch_size % cfg.data.num_instances:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be a multiple of "
                          f"data.num_instances={cfg.data.num_instances}")


def build_dataset_from(cfg: Config) -> Any:
    from reidkit.data import build_dataset

    return build_dataset(cfg.data.name, cfg.data.root, **cfg.data.options)


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
    accuracy when `dataset`, the loaders' dataset, has attribute labels and the model attribute heads)."""
    test = cfg.test
    max_rank = min(test.max_rank, num_gallery) if num_gallery else test.max_rank
    result = evaluate(
        unwrap(model), *loaders, device=ctx.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        flip=test.flip, progress=cfg.output.progress and ctx.dist.is_main, metric=test.metric,
        normalize=test.normalize, rerank=test.rerank if rerank is None else rerank, max_rank=max_rank,
        k1=test.k1, k2=test.k2, lambda_value=test.lambda_value,
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


def _run_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("*.pth")) if (run_dir / "checkpoints").is_dir() else []


def fresh_run_dir(base: str | os.PathLike) -> Path:
    """`base` if it holds no checkpoint yet, else the first of base_2, base_3, ... that holds none."""
    base = Path(base)
    candidate, n = base, 1
    while _run_checkpoints(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def _guard_run_dir(run_dir: Path) -> None:
    existing = _run_checkpoints(run_dir)
    if existing:
        raise ConfigError(
            f"output.dir {run_dir} already holds checkpoints ({existing[-1].name}, ...) of an earlier run: pass "
            f"--resume {run_dir} to continue it, or choose another folder with --output (nothing was overwritten)"
        )


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


def load_resume(resume: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    path = resolve_resume(resume)
    return path, load_checkpoint(path, for_resume=True)


def config_for_resume(ckpt: Mapping[str, Any], source: Path) -> Config:
    if not ckpt.get("config"):
        raise CheckpointError(f"{source}: holds no config; pass --config with the run's config.yaml")
    return config_from_dict(ckpt["config"], source=f"{source} (stored config)")


def train(cfg: Config, *, resume: str | os.PathLike | None = None, out: Printer = print) -> TrainResult:
    """Train (or continue) the configured model; evaluate, checkpoint and log through hooks."""
    check_config(cfg)
    ckpt, ckpt_path = None, None
    if resume is not None:
        ckpt_path, ckpt = load_resume(resume)
    ctx = setup(cfg)
    try:
        return _train(cfg, ctx, ckpt, ckpt_path, out)
    finally:
        distributed.cleanup()


def _train(cfg: Config, ctx: RunContext, ckpt: Mapping[str, Any] | None, ckpt_path: Path | None,
           out: Printer) -> TrainResult:
    main = ctx.dist.is_main
    run_dir = Path(cfg.output.dir)
    if main and ckpt is None:
        _guard_run_dir(run_dir)
    distributed.barrier()
    dataset = build_dataset_from(cfg)
    cfg = with_data_model_options(cfg, dataset)
    if main:
        save_config(cfg, run_dir / "config.yaml")
    if main:
        out(f"{cfg.data.name}: {_sample_count(dataset)} of {dataset.num_train_pids} identities, "
            f"{len(dataset.query)} query, {len(dataset.gallery)} gallery")
    loader = _train_loader(cfg, dataset, ctx)
    loaders = test_loaders(cfg, dataset)
    model = _to_device(build_model_from(cfg, dataset.num_train_pids, pretrained=ckpt is None), cfg, ctx)
    from reidkit.losses import build_model_criterion

    criterion = build_model_criterion(model, weights=cfg.loss.weights, margin=cfg.loss.margin,
                                      soft_margin=cfg.loss.soft_margin, metric=cfg.loss.metric,
                                      label_smooth=cfg.loss.label_smooth,
                                      include_self=cfg.loss.include_self).to(ctx.device)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.train.epochs)
    last: dict[str, EvalResult] = {}

    def run_evaluation(module: nn.Module) -> dict[str, float]:
        last["result"] = evaluate_model(module, cfg, ctx, loaders, num_gallery=len(dataset.gallery), dataset=dataset)
        return last["result"].flat()

    checkpoints = CheckpointHook(run_dir / "checkpoints", period=cfg.checkpoint.period,
                                 save_last=cfg.checkpoint.save_last, config=cfg.to_dict())
    logger = LoggerHook(run_dir, tensorboard=cfg.output.tensorboard, progress=cfg.output.progress,
                        log_period=cfg.train.log_period)
    hooks = [LRSchedulerHook(scheduler), EvalHook(run_evaluation, cfg.test.eval_period), logger, checkpoints]
    if cfg.loss.warmup_epochs:
        hooks.insert(0, LossWarmupHook(cfg.loss.warmup_epochs))
    trainer = Trainer(
        _wrap_distributed(model, ctx), criterion, optimizer, loader, epochs=cfg.train.epochs, device=ctx.device,
        scheduler=scheduler, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        accumulate_steps=cfg.train.accumulate_steps, fixbase_epochs=cfg.train.fixbase_epochs,
        grad_clip=cfg.train.grad_clip, dist=ctx.dist, hooks=hooks,
    )
    if ckpt is not None:
        trainer.resume(ckpt, source=str(ckpt_path))
        if main:
            out(f"resuming {ckpt_path}: {trainer.start_epoch} epochs done"
                + (f", {trainer.start_iter} iterations into the next" if trainer.start_iter else ""))
    if main:
        out(f"training {cfg.model.name} ({cfg.model.backbone}) for {cfg.train.epochs} epochs on {ctx.device}"
            + (f" x {ctx.dist.world_size} processes" if ctx.dist.enabled else "") + f"; run folder {run_dir}")
    trainer.train()
    result = last.get("result")
    final = checkpoints.saved[-1] if checkpoints.saved else checkpoints.last_path
    if not main:
        return TrainResult(run_dir, final, logger.history_path, None, None, result)
    results_path = _write_results(run_dir / "results.json", cfg, final, result)
    report = None
    if result is not None:
        out(format_table(result.table_rows(), label=f"{cfg.model.name} on {cfg.data.name}"))
        if result.verification is not None:
            out(result.verification.describe())
        if format_attributes(result.extra):
            out(format_attributes(result.extra))
        if cfg.output.report:
            report = write_run_report(run_dir, cfg, result, model, dataset, ctx, history=logger.history_path)
    return TrainResult(run_dir, final, logger.history_path, results_path, report, result)


def _sample_count(dataset: Any) -> str:
    from reidkit.data.video import VideoDataset

    if isinstance(dataset, VideoDataset):
        return f"{len(dataset.train)} training tracklets ({dataset.num_train_frames} frames)"
    return f"{len(dataset.train)} training images"


def _write_results(path: Path, cfg: Config, checkpoint: Path | None, result: EvalResult | None) -> Path:
    atomic_write_json(path, {
        "model": cfg.model.name, "dataset": cfg.data.name, "checkpoint": str(checkpoint) if checkpoint else None,
        "metrics": result.flat() if result is not None else {},
    })
    return path


def write_run_report(run_dir: Path, cfg: Config, result: EvalResult, model: nn.Module, dataset: Any,
                     ctx: RunContext, *, history: Path | None = None) -> Path | None:
    """report.html with the metrics, CMC and history plots and the best/worst ranked lists. A failure here
    is reported as a warning: the checkpoint and results are already written."""
    try:
        from reidkit.data import build_transforms
        from reidkit.visualize import report_samples, write_report

        transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
        samples = report_samples(unwrap(model), dataset.query, dataset.gallery, result.distmat, run_dir,
                                 transform=transform, device=ctx.device, dataset_name=cfg.data.name,
                                 batch_size=cfg.test.batch_size)
        cmc = {"without re-ranking": result.cmc}
        if result.cmc_reranked is not None:
            cmc["with re-ranking"] = result.cmc_reranked
        roc = result.verification.curve() if result.verification is not None else None
        return write_report(run_dir, config=cfg.to_dict(), metrics=result.table_rows(),
                            history_path=history if history and history.is_file() else None, cmc=cmc,
                            ranked_images=samples, title=f"reidkit: {cfg.model.name} on {cfg.data.name}", roc=roc)
    except Exception as error:  # noqa: BLE001  (see the docstring)
        warnings.warn(f"could not write {run_dir / 'report.html'}: {type(error).__name__}: {error}", stacklevel=2)
        return None


# -------------------------------------------------------------------------------------------------- test


def _load_for_eval(cfg: Config, weights: str | os.PathLike, default_classes: int) -> nn.Module:
    from reidkit.models import load_weights
    from reidkit.models.weights import torch_load

    obj = torch_load(weights)
    num_classes = default_classes
    if isinstance(obj, Mapping) and obj.get("format") == "reidkit" and int(obj.get("num_classes") or 0) > 0:
        num_classes = int(obj["num_classes"])
    model = build_model_from(cfg, num_classes, pretrained=False)
    report = load_weights(model, obj)
    report.source = os.fspath(weights)
    print(f"weights: {report}")
    return model


def vis_modes(cfg: Config) -> list[str]:
    return [m for m in ("visrank", "visrankactiv", "visrankactivthr", "visdrop") if getattr(cfg.test, m)]


def test(cfg: Config, weights: str | os.PathLike, *, out: Printer = print) -> TestResult:
    """Evaluate `weights` on the configured dataset's query/gallery (with and without re-ranking per
    cfg.test.rerank); draw the ranked lists asked for (cfg.test.vis*); write results and a report into
    <output.dir>/test."""
    check_config(cfg)
    ctx = local_context(cfg)
    dataset = build_dataset_from(cfg)
    cfg = with_data_model_options(cfg, dataset)
    model = _to_device(_load_for_eval(cfg, weights, dataset.num_train_pids), cfg, ctx)
    result = evaluate_model(model, cfg, ctx, test_loaders(cfg, dataset), num_gallery=len(dataset.gallery),
                            dataset=dataset)
    out_dir = Path(cfg.output.dir) / "test"
    out(format_table(result.table_rows(), label=f"{Path(weights).name} on {cfg.data.name}"))
    if result.verification is not None:
        out(result.verification.describe())
    if format_attributes(result.extra):
        out(format_attributes(result.extra))
    results = out_dir / "results.json"
    atomic_write_json(results, {"weights": os.fspath(weights), "dataset": cfg.data.name,
                                "metrics": result.flat(), "config": cfg.to_dict()})
    drawn = _visualize(cfg, model, dataset, result, out_dir, ctx)
    if drawn:
        out(f"wrote {len(drawn)} ranked lists under {out_dir / 'visualizations'}")
    report = write_run_report(out_dir, cfg, result, model, dataset, ctx) if cfg.output.report else None
    return TestResult(out_dir, result, results, drawn, report)


def _visualize(cfg: Config, model: nn.Module, dataset: Any, result: EvalResult, out_dir: Path,
               ctx: RunContext) -> list[Path]:
    modes = vis_modes(cfg)
    if not modes:
        return []
    from reidkit.data import build_transforms
    from reidkit.visualize import visualize_test_run

    transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
    return visualize_test_run(
        unwrap(model), dataset.query, dataset.gallery, result.distmat, out_dir / "visualizations", modes=modes,
        topk=cfg.test.topk, maskthr=cfg.test.maskthr, transform=transform, device=ctx.device,
        dataset_name=cfg.data.name, batch_size=cfg.test.batch_size, num_queries=cfg.test.vis_queries,
    )


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
            model_configs: Sequence[Config] | None = None) -> Path:
    """Eval-mode features into `output`.

    images = a folder: every image under it (recursively, sorted) into .npz (features, paths), .mat (same keys)
    or .pt ({"features": tensor, "paths": list}); paths relative to the folder.
    images = None: the configured dataset's query and gallery into the feature file of `reidkit postprocess`
    (.mat/.npz: query_f, gallery_f, labels, cameras, image areas and names).

    Several weights: each model's L2-normalised features / sqrt(M), concatenated (spec vehicle-aicity.md 2);
    model_configs[i] builds model i (default: cfg for all). `scales` (and cfg.test.flip) are the test-time
    augmentation: each scale is taken from the original image, the views' features summed and L2-normalised.
    Without it (one model, scales (1,)), folder features are the plain (flip-averaged) features, as before.
    """
    output = Path(output)
    if not scales or any(not s > 0 for s in scales):
        raise ConfigError(f"--scales {list(scales)}: expected positive side-length factors, e.g. 1 1.1")
    weights = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
    model_configs = list(model_configs) if model_configs else [cfg] * len(weights)
    if not weights or len(model_configs) != len(weights):
        raise ConfigError(f"extract: {len(weights)} weights for {len(model_configs)} model configs")
    if images is None:
        return _extract_dataset(cfg, weights, model_configs, output, tuple(scales), out)
    if output.suffix not in FEATURE_FORMATS:
        raise ConfigError(f"--output {output}: expected a file ending in {', '.join(FEATURE_FORMATS)}")
    from reidkit.data import build_test_loader

    files = list_images(images)
    ctx = local_context(cfg)
    models = [_to_device(_load_for_eval(c, w, 1), c, ctx) for c, w in zip(model_configs, weights)]
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


def _extract_dataset(cfg: Config, weights: Sequence[str | os.PathLike], model_configs: Sequence[Config],
                     output: Path, scales: tuple[float, ...], out: Printer) -> Path:
    """Query and gallery features of the configured dataset (TTA, fusion) in the post-processing file layout."""
    from reidkit.postprocess.extraction import extract_to_file
    from reidkit.postprocess.feature_files import SUFFIXES

    if output.suffix not in SUFFIXES:
        raise ConfigError(f"--output {output}: a query/gallery feature file ends in {' or '.join(SUFFIXES)}")
    check_config(cfg)
    ctx = local_context(cfg)
    dataset = build_dataset_from(cfg)
    models = [_to_device(_load_for_eval(c, w, dataset.num_train_pids), c, ctx) for c, w in zip(model_configs, weights)]
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
