"""Test features, made in one place: images (a loader, a folder, a list of arrays) -> eval-mode features.

    feats = extract_features(model, loader, flip=True)                       # evaluation (Top-DB-Net)
    feats = extract_features(model, loader, flip=True, scales=(1, 1.1), pool="sum_normalize")  # AICity TTA
    fused = fused_features([model_a, model_b], loader, flip=True, pool="sum_normalize")
    matrix = embed_images(model, [crop_tensor, crop_array], flip=True)       # preprocessed crops [3, H, W]

Views: the image and (flip) its horizontal mirror, each at every scale of `scales` (factors of the side length,
each applied to the unscaled image). How the views' features become one is a named pool (VIEW_POOLS), chosen to
follow each recipe's reference:
- "mean": the average of the views (the Top-DB-Net reference evaluator, docs/specs/top-db-net.md section 8).
  Every `reidkit test` / training evaluation uses it, and so does `reidkit extract --images` with one model at
  scale 1.
- "sum_normalize": the L2-normalised sum of the views (the AICity 2020 vehicle reference). `reidkit extract`
  of a dataset (the post-processing feature file) uses it, and so does a folder extraction with several models
  or scales.
Several models: each model's L2-normalised features / sqrt(M), concatenated (fuse_features). A loader whose
dataset splits a sample into items (the test chunks of a video tracklet) pools them back (sample_features).

DECISION (docs/specs/vehicle-aicity.md section 2): every scale is applied to the original (or flipped) image;
the reference rescaled the already rescaled batch, compounding the factors.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from reidkit.utils.amp import autocast
from reidkit.errors import ConfigError, DatasetError
from reidkit.registry import Registry

VIEW_POOLS: Registry[Callable[[list[torch.Tensor]], torch.Tensor]] = Registry("view pool")


def _total(outputs: list[torch.Tensor]) -> torch.Tensor:
    total = outputs[0]
    for out in outputs[1:]:
        total = total + out
    return total


@VIEW_POOLS.register("mean")
def mean_views(outputs: list[torch.Tensor]) -> torch.Tensor:
    return outputs[0] if len(outputs) == 1 else _total(outputs) / len(outputs)


@VIEW_POOLS.register("sum_normalize")
def normalized_sum_views(outputs: list[torch.Tensor]) -> torch.Tensor:
    return F.normalize(_total(outputs), dim=1)


@dataclass
class Features:
    features: torch.Tensor  # [N, D] float32, CPU
    pids: np.ndarray
    camids: np.ndarray
    paths: list = field(default_factory=list)


def check_scales(scales: Sequence[float], name: str = "scales") -> tuple[float, ...]:
    if not scales or any(not 0 < s < float("inf") for s in scales):
        raise ConfigError(f"{name} {list(scales)}: expected positive side-length factors (positive finite "
                          "numbers, e.g. 1 1.1)")
    return tuple(float(s) for s in scales)


# How a test-time scale s is read (`reidkit extract --scales-meaning`): "side" (reidkit's) multiplies the side
# lengths by s; "area" (the AICity reference's --ms, published as 1,1.1) multiplies the image area by s, that is
# the side lengths by sqrt(s).
SCALE_MEANINGS: Registry[Callable[[float], float]] = Registry("scale meaning")
SCALE_MEANINGS.register("side")(float)
SCALE_MEANINGS.register("area")(math.sqrt)


def side_scales(scales: Sequence[float], meaning: str = "side", name: str = "scales") -> tuple[float, ...]:
    """The side-length factors that `scales`, read as `meaning` (SCALE_MEANINGS), stand for."""
    to_side = SCALE_MEANINGS.get(meaning)
    return tuple(to_side(s) for s in check_scales(scales, name))


def _rescaled(images: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1:
        return images
    frames = images.reshape(-1, *images.shape[-3:])  # clips [B, T, 3, H, W] scale frame by frame
    scaled = F.interpolate(frames, scale_factor=scale, mode="bilinear", align_corners=False)
    return scaled.reshape(*images.shape[:-2], *scaled.shape[-2:])


def view_features(model: nn.Module, images: torch.Tensor, *, flip: bool = False, scales: Sequence[float] = (1.0,),
                  pool: str = "mean") -> torch.Tensor:
    """The model's features of one batch over {image, mirror (flip)} x scales, pooled by VIEW_POOLS[pool]."""
    combine = VIEW_POOLS.get(pool)
    # The last dim is the width for images [B, 3, H, W] and clips [B, T, 3, H, W] alike.
    views = (images, torch.flip(images, dims=[-1])) if flip else (images,)
    out = combine([model(_rescaled(view, scale)) for view in views for scale in check_scales(scales)])
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ConfigError(f"the model's eval output must be a [B, D] feature tensor, got "
                          f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}")
    return out


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable[Mapping[str, Any]], *, device: torch.device | str = "cpu",
                     amp: str = "none", channels_last: bool = False, flip: bool = False,
                     scales: Sequence[float] = (1.0,), pool: str = "mean", desc: str | None = None) -> Features:
    """Eval-mode features (view_features) of every batch of `loader` ({"img", "pid", "camid", "path"}), in order."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    feats, pids, camids, paths = [], [], [], []
    try:
        for batch in tqdm(loader, desc=desc, leave=False, disable=desc is None, dynamic_ncols=True):
            images = batch["img"].to(device, non_blocking=True)
            if channels_last and images.dim() == 4:  # video clips [B, T, 3, H, W]: the model's frames follow its layout
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                out = view_features(model, images, flip=flip, scales=scales, pool=pool)
            feats.append(out.float().cpu())
            pids.extend(torch.as_tensor(batch["pid"]).tolist())
            camids.extend(torch.as_tensor(batch["camid"]).tolist())
            paths.extend(batch.get("path", []))
    finally:
        model.train(was_training)
    if not feats:
        raise ConfigError("no images to extract features from (empty loader)")
    return Features(torch.cat(feats), np.asarray(pids), np.asarray(camids), paths)


def sample_features(features: Features, loader: Any) -> Features:
    """The features of the samples ranked: a loader whose dataset splits each sample into several items (the
    test chunks of a video tracklet) pools the items' features back with its `pool_features`."""
    pool = getattr(getattr(loader, "dataset", None), "pool_features", None)
    return pool(features) if callable(pool) else features


def fuse_features(per_model: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate the models' L2-normalised features, each divided by sqrt(M): the result has unit norm and
    its dot products are the mean of the models' cosine similarities."""
    if not per_model:
        raise ConfigError("fuse_features: no feature matrices given")
    rows = {len(f) for f in per_model}
    if len(rows) != 1:
        raise ConfigError(f"fuse_features: the models give different numbers of rows {sorted(rows)}")
    scale = 1.0 / math.sqrt(len(per_model))
    parts = [np.asarray(f, dtype=np.float32) for f in per_model]
    return np.concatenate([f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) * scale
                           for f in parts], axis=1)


def fused_features(models: Sequence[nn.Module], loader: Any, *, fuse: bool | None = None, **options: Any
                   ) -> Features:
    """extract_features(**options) of every model, pooled per sample (sample_features), then fused
    (fuse_features) when `fuse` (default: with several models). The ids and paths are the first model's."""
    if not models:
        raise ConfigError("no models given to extract features with")
    runs = [sample_features(extract_features(m, loader, **options), loader) for m in models]
    if not (len(runs) > 1 if fuse is None else fuse):
        return runs[0]
    first = runs[0]
    fused = fuse_features([r.features.numpy() for r in runs])
    return Features(torch.from_numpy(fused), first.pids, first.camids, first.paths)


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """Every image under `folder` (recursively, sorted); none is a DatasetError naming the folder."""
    from reidkit.data.base import IMAGE_SUFFIXES

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return images


def folder_loader(files: Sequence[Path], *, height: int, width: int, batch_size: int, workers: int = 0,
                  recipe: str = "top_db_net") -> Any:
    """A test loader of image files (pid and camid -1) with the test transform of `recipe`."""
    from reidkit.data import build_test_loader

    return build_test_loader([(str(p), -1, -1) for p in files], height=height, width=width, batch_size=batch_size,
                             workers=workers, recipe=recipe)


def embed_images(models: nn.Module | Sequence[nn.Module], images: Sequence[torch.Tensor | np.ndarray], *,
                 flip: bool = False, scales: Sequence[float] = (1.0,), pool: str = "mean", batch_size: int = 64,
                 device: torch.device | str = "cpu", amp: str = "none", normalize: bool = False) -> np.ndarray:
    """Features [N, D] float32 of preprocessed images (each a [3, H, W] tensor or array, all of one size, already
    resized and normalised as the model's test transform does), through the same views, pools and fusion as
    every other extraction; the models are on `device` already; `normalize` L2-normalises the rows."""
    models = [models] if isinstance(models, nn.Module) else list(models)
    tensors = [torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
               for x in images]
    shapes = {tuple(t.shape) for t in tensors}
    if not tensors or len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ConfigError(f"embed_images: expected [3, H, W] images of one size, got shapes {sorted(shapes)}")
    stacked = torch.stack(tensors)
    batches = [{"img": stacked[i:i + batch_size], "pid": [-1] * len(stacked[i:i + batch_size]),
                "camid": [-1] * len(stacked[i:i + batch_size])} for i in range(0, len(stacked), batch_size)]
    feats = fused_features(models, batches, device=device, amp=amp, flip=flip, scales=scales, pool=pool).features
    return (F.normalize(feats, dim=1) if normalize else feats).numpy()
