"""Builders of tiny replicas of the real dataset layouts, and a plain mAP for the synthetic-data checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, color: tuple[int, int, int] = (90, 60, 200), size: tuple[int, int] = (64, 32)) -> Path:
    """A solid (height, width) image; the format follows the suffix, other suffixes get a non-image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() not in (".jpg", ".png", ".bmp"):
        path.write_bytes(b"not an image")
        return path
    Image.new("RGB", (size[1], size[0]), color).save(path)
    return path


def make_bounding_box_layout(folder: Path, subsets: dict[str, list[str]]) -> Path:
    """folder/<subset>/<name> for Market-1501 / DukeMTMC-reID style layouts."""
    for subset, names in subsets.items():
        (folder / subset).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_image(folder / subset / name)
    return folder


def mean_average_precision(query: np.ndarray, gallery: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                           q_cams: np.ndarray, g_cams: np.ndarray) -> float:
    """Market protocol: same-pid same-camera gallery items are ignored, queries without a match skipped."""
    distances = ((query[:, None, :] - gallery[None]) ** 2).sum(-1)
    precisions = []
    for i, row in enumerate(distances):
        valid = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        matches = g_pids[valid][np.argsort(row[valid], kind="stable")] == q_pids[i]
        if matches.any():
            hit_ranks = np.flatnonzero(matches) + 1
            precisions.append(np.mean(np.arange(1, len(hit_ranks) + 1) / hit_ranks))
    return float(np.mean(precisions))
