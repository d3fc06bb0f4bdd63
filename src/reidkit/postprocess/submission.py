"""AICity track-2 submission file (docs/specs/vehicle-aicity.md section 3.7): one line per query, in query order,
holding the `topk` best gallery indices, 1-based, separated by single spaces."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reidkit.errors import PostprocessInputError, ReidkitError
from reidkit.utils.io import atomic_open

SUBMISSION_TOPK = 100


def rank_gallery(distances: np.ndarray, topk: int = SUBMISSION_TOPK) -> np.ndarray:
    """[Q, min(topk, G)] 0-based gallery indices, nearest first; ties keep the lower index first."""
    distances = np.asarray(distances)
    if distances.ndim != 2:
        raise PostprocessInputError(f"distances: expected a [Q, G] matrix, got shape {distances.shape}")
    if not np.isfinite(distances).all():
        raise PostprocessInputError("distances contain NaN or infinite values; check the feature files")
    k = min(topk, distances.shape[1])
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def write_submission(path: str | os.PathLike, distances: np.ndarray, topk: int = SUBMISSION_TOPK) -> Path:
    """Rank the gallery for every query and write the submission file atomically."""
    ranking = rank_gallery(distances, topk) + 1
    with atomic_open(path, "w", encoding="ascii", newline="\n") as handle:
        for row in ranking:
            handle.write(" ".join(map(str, row.tolist())) + "\n")
    return Path(path)


def read_submission(path: str | os.PathLike, num_gallery: int | None = None) -> list[list[int]]:
    """Read a submission back as 1-based index lists, checking the format the evaluation server expects."""
    rows: list[list[int]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), start=1):
        try:
            row = [int(tok) for tok in line.split(" ")]
        except ValueError:
            raise ReidkitError(f"{path}:{lineno}: expected space-separated integers, got {line[:60]!r}") from None
        bad = [i for i in row if i < 1 or (num_gallery is not None and i > num_gallery)]
        if bad:
            raise ReidkitError(f"{path}:{lineno}: gallery index {bad[0]} is outside 1..{num_gallery or 'G'}")
        if len(set(row)) != len(row):
            raise ReidkitError(f"{path}:{lineno}: a gallery index is listed twice")
        rows.append(row)
    return rows
