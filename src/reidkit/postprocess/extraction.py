"""The feature file the vehicle post-processing chain reads (docs/specs/vehicle-aicity.md section 2): query and gallery
features of one or several models with the AICity test-time augmentation (reidkit.features.pipeline, pool
"sum_normalize": flip + multi-scale views summed, then L2-normalised; several models fused), with labels,
cameras, image areas and names (reidkit.features.files)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from reidkit.errors import DatasetError
from reidkit.features.files import save_features
from reidkit.features.pipeline import fused_features


def image_areas(paths: Sequence[str]) -> np.ndarray:
    """Width x height of each image (header only: the pixels are not decoded)."""
    areas = np.empty(len(paths), dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                areas[i] = img.width * img.height
        except OSError as error:
            raise DatasetError(f"image {path}: cannot read its size ({error})") from None
    return areas


def extract_to_file(models: Sequence[nn.Module], query_loader: Iterable[Mapping[str, Any]],
                    gallery_loader: Iterable[Mapping[str, Any]], path: str | os.PathLike,
                    scales: Sequence[float] = (1.0,), flip: bool = True, device: str | torch.device = "cpu",
                    **extract_options: Any) -> Path:
    """Query and gallery features of every model (AICity TTA, fused; one row per sample: a video tracklet's
    chunks are pooled), written with labels, cameras, image areas and names: the inputs of `reidkit postprocess`.

    extract_options go to reidkit.features.pipeline.extract_features (amp, channels_last, desc).
    """
    models = [m.to(device) for m in models]
    out: dict[str, object] = {}
    for side, loader in (("query", query_loader), ("gallery", gallery_loader)):
        feats = fused_features(models, loader, fuse=True, scales=scales, flip=flip, pool="sum_normalize",
                               device=device, **extract_options)
        out[f"{side}_f"] = feats.features.numpy()
        out[f"{side}_label"], out[f"{side}_cam"] = feats.pids, feats.camids
        out[f"{side}_area"] = image_areas(feats.paths)
        out[f"{side}_name"] = [Path(p).name for p in feats.paths]
    return save_features(path, out)
