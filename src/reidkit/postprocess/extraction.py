"""Test-time features for the vehicle pipeline (spec 2): flip + multi-scale augmentation, fusion of several
models, and the feature file the post-processing chain reads.

DECISION (spec): every scale is applied to the original (or flipped) image; the reference rescaled the already
rescaled batch, compounding the factors.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from reidkit.postprocess.feature_files import save_features


def tta_features(model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,),
                 flip: bool = True) -> torch.Tensor:
    """L2-normalised sum of the model's features over {image, horizontal flip} x scales.

    scales are factors of the side length (1.0 = as given), each applied to the unscaled image.
    """
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales: expected positive side-length factors, got {list(scales)}")
    views = (images, images.flip(3)) if flip else (images,)
    total = None
    for view in views:
        for scale in scales:
            x = view if scale == 1 else F.interpolate(view, scale_factor=scale, mode="bilinear",
                                                      align_corners=False)
            out = model(x)
            total = out if total is None else total + out
    return F.normalize(total, dim=1)


class TestTimeAugmentation(nn.Module):
    """Wraps an eval-mode model so that model(x) is tta_features(model, x, scales, flip): any feature loop
    (reidkit.engine.evaluator.extract_features) then extracts augmented features."""

    def __init__(self, model: nn.Module, scales: Sequence[float] = (1.0,), flip: bool = True) -> None:
        super().__init__()
        self.model, self.scales, self.flip = model, tuple(scales), flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tta_features(self.model, x, self.scales, self.flip)


def fuse_features(per_model: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate the models' L2-normalised features, each divided by sqrt(M): the result has unit norm and
    its dot products are the mean of the models' cosine similarities."""
    if not per_model:
        raise ValueError("fuse_features: no feature matrices given")
    rows = {len(f) for f in per_model}
    if len(rows) != 1:
        raise ValueError(f"fuse_features: the models give different numbers of rows {sorted(rows)}")
    scale = 1.0 / math.sqrt(len(per_model))
    parts = [np.asarray(f, dtype=np.float32) for f in per_model]
    return np.concatenate([f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) * scale
                           for f in parts], axis=1)


def image_areas(paths: Sequence[str]) -> np.ndarray:
    """Width x height of each image (header only: the pixels are not decoded)."""
    areas = np.empty(len(paths), dtype=np.int64)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            areas[i] = img.width * img.height
    return areas


def extract_to_file(models: Sequence[nn.Module], query_loader: Iterable[Mapping[str, Any]],
                    gallery_loader: Iterable[Mapping[str, Any]], path: str | os.PathLike,
                    scales: Sequence[float] = (1.0,), flip: bool = True, device: str | torch.device = "cpu",
                    **extract_options: Any) -> Path:
    """Extract query and gallery features with every model (TTA), fuse them and write the feature file
    (.mat/.npz) with labels, cameras, image areas and names: the inputs of `reidkit postprocess`.

    extract_options go to reidkit.engine.evaluator.extract_features (amp, channels_last, desc).
    """
    from reidkit.engine.evaluator import extract_features

    if not models:
        raise ValueError("extract_to_file: no models given")
    out: dict[str, object] = {}
    for side, loader in (("query", query_loader), ("gallery", gallery_loader)):
        runs = [extract_features(TestTimeAugmentation(m, scales, flip).to(device), loader, device=device,
                                 **extract_options) for m in models]
        out[f"{side}_f"] = fuse_features([r.features.numpy() for r in runs])
        out[f"{side}_label"], out[f"{side}_cam"] = runs[0].pids, runs[0].camids
        out[f"{side}_area"] = image_areas(runs[0].paths)
        out[f"{side}_name"] = [Path(p).name for p in runs[0].paths]
    return save_features(path, out)
