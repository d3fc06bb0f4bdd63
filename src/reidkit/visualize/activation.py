"""Activation maps, heat-map overlays, thresholded masks and drop masks (docs/specs/top-db-net.md sections 3 and 9).

All maps are uint8 arrays [H, W] in 0..255 at the size of the image they are drawn on; images are PIL RGB.
"""
from __future__ import annotations

import functools
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

ArrayOrTensor = Union[np.ndarray, torch.Tensor]
ImageLike = Union[Image.Image, np.ndarray]


def check_size(size: Sequence[int], name: str = "size") -> tuple[int, int]:
    """Validate a (height, width) pair of positive ints."""
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ValueError(f"{name} must be (height, width) with two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def check_maskthr(maskthr: float) -> float:
    if not isinstance(maskthr, (int, float)) or not 0.0 <= float(maskthr) <= 1.0:
        raise ValueError(f"maskthr must be a number in [0, 1] (fraction of the map's maximum), got {maskthr!r}")
    return float(maskthr)


def activation_map(feature_map: ArrayOrTensor, size: Sequence[int]) -> np.ndarray:
    """Spatial activation of a backbone map: sum_c F_c^2, L2-normalised over space, bilinearly resized to
    `size` (height, width), min-max scaled to 0..255 per image.

    `feature_map` is [C, h, w] (returns [H, W]) or [B, C, h, w] (returns [B, H, W]), uint8.
    A constant map (no spatial contrast) becomes all zeros.
    """
    feats = torch.as_tensor(feature_map).detach()
    single = feats.dim() == 3
    if single:
        feats = feats.unsqueeze(0)
    if feats.dim() != 4 or feats.shape[1] == 0:
        raise ValueError(f"feature_map must be [C, h, w] or [B, C, h, w], got shape {tuple(feats.shape)}")
    if not torch.isfinite(feats).all():
        raise ValueError("feature_map contains NaN or inf values; cannot compute an activation map")
    height, width = check_size(size)
    energy = feats.float().cpu().pow(2).sum(dim=1)
    b, h, w = energy.shape
    # The normalisation does not change the min-max result; it keeps values in [0, 1] (no float overflow
    # for large maps) and mirrors the reference pipeline.
    energy = F.normalize(energy.reshape(b, h * w), p=2, dim=1).reshape(b, 1, h, w)
    resized = F.interpolate(energy, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    scaled = _min_max_uint8(resized).numpy()
    return scaled[0] if single else scaled


def _min_max_uint8(maps: torch.Tensor) -> torch.Tensor:
    # The reference computes (a - max) / (max - min), negative values that wrap around in uint8.
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    scaled = (maps - low) / span.clamp_min(1e-12)
    return (scaled * 255).round().clamp(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=None)
def _lut(name: str) -> np.ndarray:
    return (colormaps[name](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


def colorize(act: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """uint8 map [H, W] -> RGB uint8 [H, W, 3] through a matplotlib colour map (256 entries)."""
    act = _check_act(act)
    return _lut(cmap)[act]


def _check_act(act: ArrayOrTensor, shape: tuple[int, int] | None = None) -> np.ndarray:
    act = np.asarray(act.cpu() if isinstance(act, torch.Tensor) else act)
    if act.ndim != 2 or act.dtype != np.uint8:
        raise ValueError(f"activation map must be a uint8 array [H, W], got dtype {act.dtype} shape {act.shape}")
    if shape is not None and act.shape != shape:
        raise ValueError(f"activation map is {act.shape} (H, W) but the image is {shape}; resize one to the other")
    return act


def _rgb_array(image: ImageLike) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be a PIL image or a uint8 array [H, W, 3], got {array.dtype} {array.shape}")
    return array


def overlay(image: ImageLike, act: np.ndarray) -> Image.Image:
    """Blend 0.5 image + 0.5 JET heat map of `act` (same height and width as the image)."""
    rgb = _rgb_array(image)
    heat = colorize(_check_act(act, rgb.shape[:2]), "jet")
    blended = 0.5 * rgb.astype(np.float32) + 0.5 * heat.astype(np.float32)
    return Image.fromarray(np.round(blended).astype(np.uint8))


def binary_mask(act: np.ndarray, maskthr: float = 0.7) -> np.ndarray:
    """Boolean [H, W]: act / 255 >= maskthr."""
    return _check_act(act).astype(np.float64) / 255.0 >= check_maskthr(maskthr)


def threshold_mask(act: np.ndarray, maskthr: float = 0.7) -> Image.Image:
    """The thresholded activation (act / 255 >= maskthr) through the BONE colour map: white kept, black not."""
    levels = np.where(binary_mask(act, maskthr), 255, 0).astype(np.uint8)
    return Image.fromarray(colorize(levels, "bone"))


def apply_drop_mask(image: ImageLike, kept: np.ndarray) -> Image.Image:
    """The image multiplied by a drop mask [H, W] (1/True = kept, 0/False = dropped)."""
    rgb = _rgb_array(image)
    kept = np.asarray(kept)
    if kept.shape != rgb.shape[:2]:
        raise ValueError(f"drop mask is {kept.shape} (H, W) but the image is {rgb.shape[:2]}")
    return Image.fromarray((rgb * (kept[..., None] > 0.5)).astype(np.uint8))


def resize_drop_mask(mask: ArrayOrTensor, size: Sequence[int]) -> np.ndarray:
    """Model drop masks [B, 1, h, w] -> boolean [B, H, W] at image size; nearest keeps the dropped rows sharp."""
    mask = torch.as_tensor(mask).detach().float().cpu()
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"drop mask must be [B, 1, h, w] (1 = kept), got shape {tuple(mask.shape)}")
    resized = F.interpolate(mask, size=check_size(size), mode="nearest")[:, 0]
    return (resized >= 0.5).numpy()
