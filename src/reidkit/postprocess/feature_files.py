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
    raw = _read_arrays(path)
    missing = [k for k in required if k not in raw]
    if missing:
        raise ReidkitError(f"{path}: missing {', '.join(missing)} (has {', '.join(sorted(raw)) or 'nothing'})")
    out = {key: _checked_array(path, key, value) for key, value in raw.items()}
    for side in ("query", "gallery"):
        rows = out.get(f"{side}_f")
        for key in [k for k in out if k.startswith(side + "_") and not k.endswith("_f")]:
            expected = len(out[key]) if rows is None else len(rows)
            if len(out[key]) != expected:
                raise ReidkitError(f"{path}: {key} has {len(out[key])} entries, {side}_f has {expected} rows")
    return out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .mat or .npz file; anything else (damaged, truncated, pickled objects, MATLAB v7.3 HDF5)
    is a ReidkitError naming the file. Pickled arrays are never loaded."""
    try:
        if path.suffix == ".mat":
            import scipy.io

            return {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
        with np.load(path, allow_pickle=False) as npz:
            return dict(npz)
    except Exception as exc:  # noqa: BLE001  (numpy and scipy raise a dozen types for a bad file)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "pickle" in detail.lower():
            detail = "it holds pickled Python objects, which are never loaded: a feature file holds arrays only"
        raise ReidkitError(f"{path} is not a readable {path.suffix} feature file ({detail})") from None


def _checked_array(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    """*_f: a [N, D] float32 matrix of finite numbers with N >= 1; names: str; the rest: 1-D number vectors
    (labels and cameras integers)."""
    if key in NAME_KEYS:
        return np.asarray([str(s).strip() for s in np.ravel(value)])  # .mat pads strings to equal length
    value = np.asarray(value)
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise ReidkitError(f"{path}: {key} must hold numbers, got {value.dtype} values")
    if not key.endswith("_f"):
        vector = value.reshape(-1)
        if key.endswith(("_label", "_cam")) and not np.array_equal(vector, np.round(vector)):
            raise ReidkitError(f"{path}: {key} must hold integer labels")
        return vector
    if value.ndim != 2 or value.shape[0] == 0 or value.shape[1] == 0:
        raise ReidkitError(f"{path}: {key} must be a [N, D] matrix with N, D >= 1, got shape {value.shape}")
    matrix = value.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ReidkitError(f"{path}: {key} holds NaN or infinite values ({bad.size} rows, the first row {bad[0]})")
    return matrix


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a feature file (query_f and gallery_f required)."""
    return load_arrays(path, REQUIRED_KEYS)
