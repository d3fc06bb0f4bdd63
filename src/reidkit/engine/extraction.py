"""`reidkit extract`: eval-mode features of a folder of images, or of a dataset's query and gallery, through the
one feature pipeline (reidkit.features.pipeline) into a feature file (reidkit.features.files)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from reidkit.config import Config
from reidkit.engine.builders import Printer, RunContext, load_for_eval, local_context, model_to_device, test_loaders
from reidkit.engine.run_config import build_dataset_from, check_config, with_data_model_options
from reidkit.errors import ConfigError
from reidkit.features.files import FOLDER_SUFFIXES, SUFFIXES, save_folder_features
from reidkit.features.pipeline import check_scales, folder_images, folder_loader, fused_features
from reidkit.utils.paths import refuse_overlap


@dataclass
class ModelSource:
    config: Config  # builds the model
    weights: str | os.PathLike
    loaded: Any = None  # the content of `weights` when the caller has read it already


def extract(cfg: Config, weights: str | os.PathLike | Sequence[str | os.PathLike], images: str | os.PathLike | None,
            output: str | os.PathLike, *, out: Printer = print, scales: Sequence[float] = (1.0,),
            model_configs: Sequence[Config] | None = None, trust_checkpoint: bool = False,
            loaded: Sequence[Any] | None = None) -> Path:
    """Eval-mode features into `output`.

    images = a folder: every image under it (recursively, sorted) into .npz (features, paths), .mat (same keys)
    or .pt ({"features": tensor, "paths": list}); paths relative to the folder.
    images = None: the configured dataset's query and gallery (one row per image, or per video tracklet) into
    the feature file of `reidkit postprocess` (.mat/.npz: query_f, gallery_f, labels, cameras, areas, names).

    Several weights: each model's L2-normalised features / sqrt(M), concatenated (docs/specs/vehicle-aicity.md
    section 2); model_configs[i] builds model i (default: cfg for all), with the model options the data implies. `scales`
    and cfg.test.flip are the views; a dataset, or a folder with several models or scales, pools them as the
    AICity reference does ("sum_normalize"); one model at scale 1 gives a folder its plain features (the views'
    mean, as the evaluator makes them). The weights are read tensors-only unless trust_checkpoint; `loaded[i]`:
    the content of weights[i] when the caller has read it already.
    """
    output, scales = Path(output), check_scales(scales, "--scales")
    weights = [weights] if isinstance(weights, (str, os.PathLike)) else list(weights)
    model_configs = list(model_configs) if model_configs else [cfg] * len(weights)
    if not weights or len(model_configs) != len(weights):
        raise ConfigError(f"extract: {len(weights)} weights for {len(model_configs)} model configs")
    for path in weights:
        refuse_overlap(output, {"--weights file": path}, flag="--output")
    contents = list(loaded) if loaded is not None else [None] * len(weights)
    sources = [ModelSource(c, w, o) for c, w, o in zip(model_configs, weights, contents, strict=True)]
    if images is None:
        return _extract_dataset(cfg, sources, output, scales, out, trust_checkpoint)
    return _extract_folder(cfg, sources, images, output, scales, out, trust_checkpoint)


def load_models(sources: Sequence[ModelSource], dataset: Any, default_classes: int, ctx: RunContext, *,
                trust_checkpoint: bool) -> list[nn.Module]:
    """Each source's model in eval placement, built with the model options that `dataset` implies."""
    models = []
    for source in sources:
        config = with_data_model_options(source.config, dataset)
        model = load_for_eval(config, source.weights, default_classes, loaded=source.loaded,
                              trust_checkpoint=trust_checkpoint)
        models.append(model_to_device(model, config, ctx))
    return models


def _extract_folder(cfg: Config, sources: Sequence[ModelSource], images: str | os.PathLike, output: Path,
                    scales: tuple[float, ...], out: Printer, trust_checkpoint: bool) -> Path:
    refuse_overlap(output, {"--images folder": images}, flag="--output")
    if output.suffix not in FOLDER_SUFFIXES:
        raise ConfigError(f"--output {output}: expected a file ending in {', '.join(FOLDER_SUFFIXES)}")
    files = folder_images(images)
    ctx = local_context(cfg)
    models = load_models(sources, _ImageFolder(), 1, ctx, trust_checkpoint=trust_checkpoint)
    loader = folder_loader(files, height=cfg.data.height, width=cfg.data.width, batch_size=cfg.test.batch_size,
                           workers=cfg.data.workers, recipe=cfg.data.recipe)
    plain = len(models) == 1 and scales == (1.0,)
    feats = fused_features(models, loader, fuse=not plain, flip=cfg.test.flip, scales=scales,
                           pool="mean" if plain else "sum_normalize", **_run_options(cfg, ctx)).features.numpy()
    relative = [p.relative_to(Path(images).expanduser()).as_posix() for p in files]
    save_folder_features(output, feats, relative)
    out(f"wrote {output}: {len(files)} images x {feats.shape[1]} features")
    return output


class _ImageFolder:
    """What a folder of images tells the model options: single images, no attribute labels."""
    sample_kind = "image"
    attribute_schema = None


def _extract_dataset(cfg: Config, sources: Sequence[ModelSource], output: Path, scales: tuple[float, ...],
                     out: Printer, trust_checkpoint: bool) -> Path:
    """Query and gallery features of the configured dataset (TTA, fusion) in the post-processing file layout."""
    from reidkit.postprocess.extraction import extract_to_file

    if output.suffix not in SUFFIXES:
        raise ConfigError(f"--output {output}: a query/gallery feature file ends in {' or '.join(SUFFIXES)}")
    check_config(cfg)
    ctx = local_context(cfg)
    dataset = build_dataset_from(cfg)
    refuse_overlap(output, {"dataset folder": getattr(dataset, "root", None)}, flag="--output")
    models = load_models(sources, dataset, dataset.num_train_pids, ctx, trust_checkpoint=trust_checkpoint)
    query_loader, gallery_loader = test_loaders(cfg, dataset)
    extract_to_file(models, query_loader, gallery_loader, output, scales=scales, flip=cfg.test.flip,
                    **_run_options(cfg, ctx))
    out(f"wrote {output}: {len(dataset.query)} query and {len(dataset.gallery)} gallery images of {cfg.data.name} "
        f"x {len(models)} model(s), scales {list(scales)}, flip {cfg.test.flip}")
    return output


def _run_options(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    return {"device": ctx.device, "amp": cfg.train.amp, "channels_last": cfg.train.channels_last,
            "desc": "extract" if cfg.output.progress else None}
