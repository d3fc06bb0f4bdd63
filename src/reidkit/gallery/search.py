"""Query a gallery with one image: ranked hits (optionally k-reciprocal re-ranked), a table and a ranked-list image.

    ranked = search_image(gallery, embedder, "query.jpg", topk=20, camera=3, rerank=True)
    print(format_table(ranked)); draw_ranked(gallery, "query.jpg", ranked).save("ranked.jpg")

Re-ranking takes the RERANK_CANDIDATES best candidates (at least topk) that pass the filters, fetches their
stored vectors and re-orders them by k-reciprocal re-ranking (reidkit.metrics.re_ranking on d = 2 - 2 cos,
k1 20, k2 6, lambda 0.3, k1 / k2 capped by the candidate count); the table then shows that distance too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from reidkit.errors import GalleryError
from reidkit.gallery.base import Gallery, Hit, check_topk
from reidkit.gallery.indexing import EmbedderLike, decode_image
from reidkit.gallery.metadata import NamePattern, format_time

RERANK_CANDIDATES = 100
CELL_SIZE = (128, 64)
MISSING_CELL = (200, 200, 200)


@dataclass
class Ranked:
    hit: Hit
    rerank_distance: float | None = None


def read_query(path: str | os.PathLike) -> np.ndarray:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GalleryError(f"cannot read query image {path}: {exc.strerror or exc}") from None
    try:
        return decode_image(data)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GalleryError(f"cannot decode query image {path}: {exc}") from None


def search_image(gallery: Gallery, embedder: EmbedderLike, query: str | os.PathLike, topk: int = 20, *,
                 rerank: bool = False, **filters: Any) -> list[Ranked]:
    """The topk hits for a query image (filters: camera, exclude_camera, since, until of Gallery.search)."""
    image = read_query(query)
    vector = embedder.embed([image])[0]
    count = len(gallery)
    if not rerank or count == 0:  # an empty gallery: Gallery.search says so
        return [Ranked(hit) for hit in gallery.search(vector, topk, **filters)]
    wanted = min(count, max(check_topk(topk, count), RERANK_CANDIDATES))
    candidates = gallery.search(vector, wanted, **filters)
    return rerank_hits(vector, candidates, gallery.vectors([h.id for h in candidates]))[:topk]


def rerank_hits(query: np.ndarray, hits: Sequence[Hit], vectors: np.ndarray) -> list[Ranked]:
    """Hits re-ordered by k-reciprocal re-ranking of the query against their vectors (smallest distance first)."""
    from reidkit.metrics import re_ranking

    if len(hits) < 2:
        return [Ranked(hit, 0.0) for hit in hits]
    q = np.asarray(query, np.float32)[None] / np.linalg.norm(query)
    q_g, g_g = 2 - 2 * (q @ vectors.T), 2 - 2 * (vectors @ vectors.T)
    k1 = min(20, len(hits))
    dist = re_ranking(q_g, np.zeros((1, 1), np.float32), g_g, k1=k1, k2=min(6, k1), lambda_value=0.3,
                      square_input=False)[0]
    order = np.argsort(dist, kind="stable")
    return [Ranked(hits[i], float(dist[i])) for i in order]


def format_table(ranked: Sequence[Ranked]) -> str:
    reranked = any(r.rerank_distance is not None for r in ranked)
    head = f"{'rank':>4}  {'score':>6}  " + (f"{'rerank':>6}  " if reranked else "")
    lines = [head + f"{'camera':>6}  {'time':<19}  path"]
    for rank, r in enumerate(ranked, start=1):
        item = r.hit.item
        extra = f"{r.rerank_distance:6.3f}  " if reranked else ""
        camera = "-" if item.camera is None else str(item.camera)
        lines.append(f"{rank:>4}  {r.hit.score:6.3f}  {extra}{camera:>6}  {format_time(item.timestamp):<19}  "
                     f"{item.path}")
    return "\n".join(lines)


def _picture(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:  # moved or deleted since indexing: an empty cell keeps the ranks aligned
        return Image.new("RGB", (CELL_SIZE[1], CELL_SIZE[0]), MISSING_CELL)


def correct_flags(gallery: Gallery, query: str | os.PathLike, ranked: Sequence[Ranked]) -> list[bool | None]:
    """Same person as the query, when the gallery was indexed with a file-name pattern that also names the query's
    person; None (unknown) otherwise."""
    pattern = gallery.notes("pattern")
    fields = NamePattern(pattern).lookup(Path(query).name) if pattern else None
    if fields is None or fields.pid is None:
        return [None] * len(ranked)
    return [None if r.hit.item.pid is None else r.hit.item.pid == fields.pid for r in ranked]


def draw_ranked(gallery: Gallery, query: str | os.PathLike, ranked: Sequence[Ranked]) -> Image.Image:
    """The query, then the ranked crops (the existing ranked-list grid; borders: visualize.grid)."""
    from reidkit.visualize.grid import make_ranked_grid

    root = Path(gallery.root or ".")
    pictures = [_picture(root / r.hit.item.path) for r in ranked]
    return make_ranked_grid(_picture(Path(query)), pictures, correct_flags(gallery, query, ranked),
                            cell_size=CELL_SIZE)
