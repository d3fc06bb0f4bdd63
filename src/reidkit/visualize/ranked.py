"""Test-time ranked-list visualisations (`reidkit test --visrank/--visrankactiv/--visrankactivthr/--visdrop`).

Activations are computed lazily: only for the query and top-k images of the grids being drawn, a few queries at
a time and in batches of `batch_size`, so memory stays bounded whatever the gallery size (the reference keeps
maps of every gallery image: about 3 GB for Market-1501).
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from reidkit.data.base import read_image
from reidkit.errors import ConfigError, DatasetError
from reidkit.utils.io import atomic_open
from reidkit.visualize.activation import (
    activation_map,
    apply_drop_mask,
    check_maskthr,
    overlay,
    resize_drop_mask,
    threshold_mask,
)
from reidkit.visualize.grid import DEFAULT_CELL_SIZE, inner_size, make_ranked_grid
from reidkit.visualize.ranking import as_distmat, ranked_gallery

log = logging.getLogger(__name__)

MODES = ("visrank", "visrankactiv", "visrankactivthr", "visdrop")
ACTIVATION_MODES = frozenset({"visrankactiv", "visrankactivthr", "visdrop"})


@dataclass
class ImageMaps:
    activation: np.ndarray  # uint8 [H, W]
    kept: np.ndarray | None  # bool [H, W], Top DropBlock mask (True = kept); None unless visdrop


@dataclass
class _Ranked:
    name: str
    paths: list[str]  # query image, then the top-k gallery images
    correct: np.ndarray  # per gallery image: same identity as the query


def image_path(item_path: str | Sequence[str]) -> str:
    """The image drawn for a dataset item: the path itself, or the first frame of a video tracklet."""
    if isinstance(item_path, (list, tuple)):
        if not item_path:
            raise DatasetError("a tracklet has no frames; expected at least one image path")
        return str(item_path[0])
    return str(item_path)


def load_image(path: str | os.PathLike) -> Image.Image:
    """RGB, as the loaders read it (16-bit grey scaled, not clipped; a bad or oversized file a DatasetError)."""
    return read_image(path)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _model_output(model: Any, method: str, x: torch.Tensor) -> torch.Tensor:
    out = getattr(model, method)(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model.{method}(x) for a batch of {x.shape[0]} returned {shape}; expected [B, C, h, w]")
    return out


def _to_input(transform: Callable, image: Image.Image, path: str) -> torch.Tensor:
    tensor = transform(image)
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"transform of {path!r} returned {got}; expected a tensor [3, H, W] (the test transform)")
    return tensor


def compute_maps(
    model: torch.nn.Module,
    paths: Sequence[str],
    *,
    transform: Callable,
    size: Sequence[int],
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    with_drop: bool = False,
) -> dict[str, ImageMaps]:
    """Activation map (and drop mask when `with_drop`) at `size` (height, width) for each image path, running
    the model (eval mode, no grad; its train/eval state is restored) on batches of at most `batch_size`."""
    maps: dict[str, ImageMaps] = {}
    with _eval_mode(model):
        for start in range(0, len(paths), batch_size):
            batch = list(paths[start : start + batch_size])
            x = torch.stack([_to_input(transform, load_image(p), p) for p in batch]).to(device)
            acts = activation_map(_model_output(model, "backbone_features", x), size)
            kept = resize_drop_mask(_model_output(model, "drop_mask", x), size) if with_drop else [None] * len(batch)
            maps.update({p: ImageMaps(a, k) for p, a, k in zip(batch, acts, kept)})
    return maps


def _check_modes(modes: Iterable[str]) -> list[str]:
    if isinstance(modes, str):
        modes = [modes]
    checked = list(dict.fromkeys(modes))
    unknown = [m for m in checked if m not in MODES]
    if unknown:
        raise ConfigError(f"unknown visualisation mode(s) {unknown}; expected a subset of {list(MODES)}")
    return checked


def _check_model(model: Any, modes: list[str], transform: Callable | None) -> None:
    if not ACTIVATION_MODES.intersection(modes):
        return
    if transform is None:
        raise ConfigError(f"modes {modes} draw activation maps and need the test transform; got transform=None")
    if not callable(getattr(model, "backbone_features", None)):
        raise ConfigError(f"modes {modes} need model.backbone_features(x); {type(model).__name__} has none")
    if "visdrop" in modes and not callable(getattr(model, "drop_mask", None)):
        raise ConfigError(
            f"visdrop draws the Top DropBlock mask; {type(model).__name__} has no drop_mask(x) (use a drop model)"
        )


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _select_queries(num_query: int, num_queries: int | None, query_indices: Sequence[int] | None) -> list[int]:
    if num_queries is not None and query_indices is not None:
        raise ValueError("give num_queries or query_indices, not both")
    if query_indices is not None:
        bad = [i for i in query_indices if not 0 <= int(i) < num_query]
        if bad:
            raise ValueError(f"query_indices {bad} out of range; expected indices in 0..{num_query - 1}")
        return [int(i) for i in query_indices]
    if num_queries is not None:
        return list(range(min(_positive_int(num_queries, "num_queries"), num_query)))
    return list(range(num_query))


def _query_names(query: Sequence, indices: list[int]) -> dict[int, str]:
    """File stem per query: the image name, suffixed with the query index if two queries share a name."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for q in indices:
        stem = Path(image_path(query[q][0])).stem
        name = stem if stem not in used else f"{stem}_{q}"
        used.add(name)
        names[q] = name
    return names


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rank_chunk(
    chunk: list[int], query: Sequence, gallery: Sequence, ids: tuple[np.ndarray, np.ndarray], dist: np.ndarray,
    topk: int, names: dict[int, str],
) -> list[_Ranked]:
    g_pids, g_camids = ids
    ranked = []
    for q in chunk:
        order, correct = ranked_gallery(dist[q], query[q][1], query[q][2], g_pids, g_camids, topk)
        paths = [image_path(query[q][0])] + [image_path(gallery[g][0]) for g in order]
        ranked.append(_Ranked(names[q], paths, correct))
    return ranked


def _save_jpeg(image: Image.Image, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="JPEG", quality=95)


def _extra_rows(mode: str, pictures: list[Image.Image], maps: list[ImageMaps], maskthr: float) -> list[list]:
    if mode == "visrank":
        return []
    overlays = [overlay(p, m.activation) for p, m in zip(pictures, maps)]
    if mode == "visrankactiv":
        return [overlays]
    if mode == "visrankactivthr":
        return [overlays, [threshold_mask(m.activation, maskthr) for m in maps]]
    return [overlays, [apply_drop_mask(p, m.kept) for p, m in zip(pictures, maps)]]


def _draw_query(
    ranked: _Ranked, maps: dict[str, ImageMaps], modes: list[str], out_dirs: dict[str, Path], maskthr: float,
    cell_size: tuple[int, int],
) -> list[Path]:
    inner_h, inner_w = inner_size(cell_size)
    pictures = [load_image(p).resize((inner_w, inner_h), Image.Resampling.BILINEAR) for p in ranked.paths]
    written = []
    for mode in modes:
        rows = _extra_rows(mode, pictures, [maps[p] for p in ranked.paths], maskthr) if mode in ACTIVATION_MODES else []
        grid = make_ranked_grid(pictures[0], pictures[1:], list(ranked.correct), rows, cell_size)
        wrong_first = mode == "visrankactivthr" and not (len(ranked.correct) and ranked.correct[0])
        target = out_dirs[mode] / f"{'error_' if wrong_first else ''}{ranked.name}.jpg"
        # A re-run may flip rank-1 correctness: drop the stale twin so each query has one file.
        stale = out_dirs[mode] / (ranked.name + ".jpg" if wrong_first else f"error_{ranked.name}.jpg")
        stale.unlink(missing_ok=True)
        _save_jpeg(grid, target)
        written.append(target)
    return written


def visualize_test_run(
    model: torch.nn.Module | None,
    query: Sequence,
    gallery: Sequence,
    distmat: np.ndarray | torch.Tensor,
    save_dir: str | os.PathLike,
    *,
    modes: Iterable[str],
    topk: int = 5,
    maskthr: float = 0.7,
    transform: Callable | None = None,
    device: str | torch.device = "cpu",
    dataset_name: str = "dataset",
    batch_size: int = 32,
    num_queries: int | None = None,
    query_indices: Sequence[int] | None = None,
    cell_size: Sequence[int] = DEFAULT_CELL_SIZE,
) -> list[Path]:
    """Write save_dir/<mode>_<dataset_name>/<query_name>.jpg for every drawn query and mode; return the paths
    (query order, then mode order).

    modes: subset of visrank (one row), visrankactiv (+ JET overlays), visrankactivthr (+ BONE mask of
    act/255 >= maskthr; file prefixed error_ when rank-1 is wrong), visdrop (+ image x Top DropBlock mask).
    query/gallery: (image_path, pid, camid, ...) items; distmat: [num_query, num_gallery]. The model must be on
    `device`; it is needed only by activation modes. num_queries draws the first N queries, query_indices a
    chosen list (e.g. best/worst by AP). cell_size: (height, width) of one image cell incl. its 5 px border.
    """
    modes = _check_modes(modes)
    dist = as_distmat(distmat, len(query), len(gallery))
    topk, batch_size = _positive_int(topk, "topk"), _positive_int(batch_size, "batch_size")
    maskthr = check_maskthr(maskthr)
    cell_size = tuple(cell_size)
    inner = inner_size(cell_size)
    _check_model(model, modes, transform)
    if not dataset_name or any(sep in dataset_name for sep in ("/", "\\")):
        raise ValueError(f"dataset_name must be a non-empty name without path separators, got {dataset_name!r}")
    indices = _select_queries(len(query), num_queries, query_indices)
    if not modes or not indices:
        return []
    out_dirs = {mode: Path(save_dir) / f"{mode}_{dataset_name}" for mode in modes}
    names = _query_names(query, indices)
    ids = (np.asarray([item[1] for item in gallery]), np.asarray([item[2] for item in gallery]))
    needs_maps = bool(ACTIVATION_MODES.intersection(modes))
    written: list[Path] = []
    # Enough queries per chunk to fill about one batch with their query + top-k images.
    for chunk in _chunks(indices, max(1, batch_size // (topk + 1))):
        ranked = _rank_chunk(chunk, query, gallery, ids, dist, topk, names)
        maps = {}
        if needs_maps:
            unique = list(dict.fromkeys(p for r in ranked for p in r.paths))
            maps = compute_maps(model, unique, transform=transform, size=inner, device=device,
                                batch_size=batch_size, with_drop="visdrop" in modes)
        for r in ranked:
            written += _draw_query(r, maps, modes, out_dirs, maskthr, cell_size)
        log.info("visualised %d/%d queries", len(written) // len(modes), len(indices))
    return written
