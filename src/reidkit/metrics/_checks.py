"""Input checks shared by the metrics modules: every message names the argument and the expected shape."""
from __future__ import annotations

from typing import Any

import numpy as np

from reidkit.errors import ReidkitError


class MetricInputError(ReidkitError, ValueError):
    """An argument of a metrics / retrieval function has the wrong shape, length, dtype or value."""


def to_numpy(name: str, x: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor (any device) or sequence, without copying when possible."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise MetricInputError(f"{name} cannot be converted to an array: {exc}") from exc


def as_matrix(name: str, x: Any, *, rows: int | None = None, cols: int | None = None,
              rows_from: str = "", cols_from: str = "") -> np.ndarray:
    """A 2-D floating numpy array, checked against the expected number of rows / columns."""
    arr = to_numpy(name, x)
    if arr.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D matrix, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MetricInputError(f"{name} must hold numbers, got dtype {arr.dtype}")
    for axis, want, source in ((0, rows, rows_from), (1, cols, cols_from)):
        if want is not None and arr.shape[axis] != want:
            where = f" (the length of {source})" if source else ""
            raise MetricInputError(
                f"{name} has shape {arr.shape}; expected {want}{where} {'rows' if axis == 0 else 'columns'}")
    return arr


def as_labels(name: str, x: Any, length: int, length_from: str) -> np.ndarray:
    """A 1-D int64 label vector (pids or camids) of the given length."""
    arr = to_numpy(name, x)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(arr) != length:
        raise MetricInputError(f"{name} has length {len(arr)}; expected {length} ({length_from})")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise MetricInputError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MetricInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
