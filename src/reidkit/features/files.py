"""Every feature-file layout, read and written here (`reidkit extract`, `reidkit postprocess`, the gallery index).

- query/gallery (a dataset's features, the post-processing input): the reference's .mat layout {query_f,
  gallery_f, query_label, query_cam, gallery_label, gallery_cam} (scipy.io), or the same keys in .npz. Optional
  extra keys: query_area / gallery_area (image w x h, for the high-quality test of docs/specs/vehicle-aicity.md
  sections 3.1-3.2) and query_name / gallery_name (image file names, to read tracks). save_features / load_features / load_arrays.
- image folder: `features` [N, D] and `paths` [N] in .npz, .mat or .pt. save_folder_features.
read_feature_file reads one matrix and its names from either layout. Pickled objects are never loaded.
"""
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
FOLDER_SUFFIXES = (".npz", ".mat", ".pt")


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


def save_folder_features(path: str | os.PathLike, features: Any, paths: list[str]) -> Path:
    """An image folder's features [N, D] and their paths, atomically; the format follows the suffix."""
    path = Path(path)
    if path.suffix not in FOLDER_SUFFIXES:
        raise ReidkitError(f"feature file {path}: expected a file ending in {', '.join(FOLDER_SUFFIXES)}")
    features = np.asarray(features, dtype=np.float32)
    if path.suffix == ".pt":
        import torch

        from reidkit.utils.io import atomic_torch_save

        atomic_torch_save({"features": torch.from_numpy(features), "paths": paths}, path)
        return path
    with atomic_open(path, "wb") as handle:
        if path.suffix == ".npz":
            np.savez(handle, features=features, paths=np.asarray(paths))
        else:
            import scipy.io

            scipy.io.savemat(handle, {"features": features, "paths": np.asarray(paths, dtype=object)})
    return path


def _as_names(value: Any) -> np.ndarray:
    """Strings from npz unicode arrays, .mat cell arrays (each cell an array of one string) or lists."""
    flat = np.asarray(value, dtype=object).reshape(-1)
    return np.asarray([str(v.reshape(-1)[0] if isinstance(v, np.ndarray) else v).strip() for v in flat])


def _read_any(path: Path) -> dict[str, Any]:
    if path.suffix == ".pt":
        from reidkit.models.weights import torch_load

        data = torch_load(path)  # tensors-only: a feature file never needs more
        if not isinstance(data, dict):
            raise ReidkitError(f"{path}: expected a dict with 'features' (a `reidkit extract` .pt file)")
        return data
    if path.suffix not in SUFFIXES:
        raise ReidkitError(f"feature file {path}: expected a name ending in .npz, .mat or .pt")
    return _read_arrays(path)


def read_feature_file(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(features [N, D] float32, names [N] or None) of a `reidkit extract` file of either layout. key: the
    matrix to read (default `features` if present, else `gallery_f`); its names are `paths` or `<side>_name`."""
    path = Path(path)
    if not path.is_file():
        raise ReidkitError(f"feature file {path} does not exist")
    data = _read_any(path)
    key = key or ("features" if "features" in data else "gallery_f")
    if key not in data:
        raise ReidkitError(f"{path}: no {key!r} matrix (has {', '.join(sorted(data)) or 'nothing'}); "
                           "pass key= one of its feature matrices")
    value = data[key]
    features = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    if features.ndim != 2:
        raise ReidkitError(f"{path}: {key} has shape {features.shape}; expected [N, D]")
    name_key = "paths" if key == "features" else key[: -len("_f")] + "_name" if key.endswith("_f") else None
    names = _as_names(data[name_key]) if name_key in data else None
    if names is not None and len(names) != len(features):
        raise ReidkitError(f"{path}: {name_key} has {len(names)} entries, {key} has {len(features)} rows")
    return np.asarray(features, dtype=np.float32), names
