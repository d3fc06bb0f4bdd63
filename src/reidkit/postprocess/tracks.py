"""Track smoothing (docs/specs/vehicle-aicity.md section 3.2) and the high-quality test of sections 3.1-3.2."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from reidkit.errors import PostprocessInputError
from reidkit.postprocess.groups import labels_from_groups

MIN_HIGH_QUALITY_AREA = 15000  # px; the reference's 150 x 150 bound for a "high-quality" crop


def high_quality_mask(areas: np.ndarray | None, n: int, min_area: float = MIN_HIGH_QUALITY_AREA) -> np.ndarray:
    """True for images whose area (w x h, px) reaches `min_area`; without areas every image qualifies."""
    if areas is None:
        return np.ones(n, dtype=bool)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if areas.shape[0] != n:
        raise PostprocessInputError(f"image areas: expected {n} values, got {areas.shape[0]}")
    return areas >= min_area


def group_mean(features: np.ndarray, members: np.ndarray, high_quality: np.ndarray) -> np.ndarray:
    """Mean feature of a group's high-quality members, or of all members when none qualifies."""
    good = members[high_quality[members]]
    return features[good if good.size else members].mean(axis=0)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def smooth_tracks(gallery_f: np.ndarray, tracks: Sequence[np.ndarray], high_quality: np.ndarray | None = None,
                  weight: float = 0.5) -> np.ndarray:
    """g <- normalise(g + weight * mean(high-quality members of g's track)); images in no track only normalised.

    Every mean is taken from the input features, so the result does not depend on the track order.
    """
    gallery_f = np.asarray(gallery_f, dtype=np.float32)
    hq = np.ones(len(gallery_f), dtype=bool) if high_quality is None else np.asarray(high_quality, dtype=bool)
    labels_from_groups(tracks, len(gallery_f), name="tracks")  # validates indices and overlaps
    out = gallery_f.copy()
    for members in tracks:
        if len(members):
            out[members] += weight * group_mean(gallery_f, np.asarray(members), hq)
    return l2_normalize(out)
