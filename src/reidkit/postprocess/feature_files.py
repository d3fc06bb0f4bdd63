"""Feature files: the reference's .mat layout {query_f, gallery_f, query_label, query_cam, gallery_label,
gallery_cam} (scipy.io), or the same keys in .npz. Optional extra keys: query_area / gallery_area (image w x h,
for the high-quality test of spec 3.1-3.2) and query_name / gallery_name (image file names, to read tracks)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.utils.io import atomic_open

REQUIRED_KEYS = ("query_f", "gallery_f")
VECTOR_KEYS = ("query_label", "query_cam", "gallery_label", "gallery_cam", "query_area", "gallery_area")
NAME_KEYS = ("query_name", "gallery_name")
SUFFIXES = (".mat", ".npz")


def _check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise ReidkitError(f"feature file {path}: expected a name ending in {' or '.join(SUFFIXES)}")


def save_features(path: str | os.PathLike, features: dict[str, Any]) -> Path:
    """Write a feature file atomically; the format follows the suffix (.mat or .npz)."""
    path = Path(path)
    _check_suffix(path)
    missing = [k for k in REQUIRED_KEYS if k not in features]
    if missing:
        raise ReidkitError(f"feature file {path}: missing {', '.join(missing)}")
    data = {k: np.asarray(v, dtype=np.float32) for k, v in features.items() if k.endswith("_f")}
    data.update({k: np.asarray(features[k]).reshape(-1) for k in VECTOR_KEYS if k in features})
    data.update({k: np.asarray([str(s) for s in features[k]]) for k in NAME_KEYS if k in features})
    unknown = set(features) - set(data)
    if unknown:
        raise ReidkitError(f"feature file {path}: unknown keys {sorted(unknown)}; expected *_f matrices, "
                           f"{', '.join(VECTOR_KEYS + NAME_KEYS)}")
    with atomic_open(path, "wb") as handle:
        if path.suffix == ".mat":
            import scipy.io

            scipy.io.savemat(handle, data)
        else:
            np.savez(handle, **data)
    return path


def load_arrays(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, np.ndarray]:
    """Read a .mat or .npz file holding `required` (feature files, camera predictions, ...).

    *_f keys come back as [N, D] float32 matrices, names as arrays of str, everything else as 1-D vectors;
    every query_* / gallery_* entry must have as many rows as query_f / gallery_f (when those are present).
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ReidkitError(f"file {path} does not exist")
    if path.suffix == ".mat":
        import scipy.io

        raw = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    else:
        with np.load(path, allow_pickle=False) as npz:
            raw = dict(npz)
    missing = [k for k in required if k not in raw]
    if missing:
        raise ReidkitError(f"{path}: missing {', '.join(missing)} (has {', '.join(sorted(raw)) or 'nothing'})")
    out: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if key.endswith("_f"):
            out[key] = np.asarray(value, dtype=np.float32).reshape(len(value), -1)
        elif key in NAME_KEYS:
            out[key] = np.asarray([str(s).strip() for s in value])  # .mat pads strings to equal length
        else:
            out[key] = np.asarray(value).reshape(-1)
    for side in ("query", "gallery"):
        rows = out.get(f"{side}_f")
        for key in [k for k in out if k.startswith(side + "_") and not k.endswith("_f")]:
            expected = len(out[key]) if rows is None else len(rows)
            if len(out[key]) != expected:
                raise ReidkitError(f"{path}: {key} has {len(out[key])} entries, {side}_f has {expected} rows")
    return out


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a feature file (query_f and gallery_f required)."""
    return load_arrays(path, REQUIRED_KEYS)
