"""Index a folder of images into a gallery: hash, skip what is there, decode, embed, insert, one batch at a time.

    summary = index_images(gallery, embedder, "crops/", metadata=NamePattern("market1501"), batch_size=64)

Each batch is one transaction: a crash or kill -9 loses at most the batch in flight, and a re-run skips every
image whose content hash the gallery already holds, so it completes the gallery without duplicates. Images that
cannot be read or decoded are listed in the summary and skipped, never abort the run.

Several processes (`torchrun --nproc_per_node N -m reidkit index ...`): `workers` shards the sorted image list
(rank r takes images r, r + N, ...), every process embeds its share; when the gallery admits one writer
(`gallery.single_writer`: SQLite, Milvus Lite) the batches are gathered and rank 0 alone checks and inserts,
against a server every process checks and inserts its own.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from reidkit.errors import GalleryError
from reidkit.gallery.base import Gallery, Item
from reidkit.gallery.metadata import MetadataSource, NoMetadata


class EmbedderLike(Protocol):
    fingerprint: dict

    def embed(self, images: Sequence[Any]) -> np.ndarray: ...


class Workers(Protocol):
    """The processes of one indexing run (torchrun), or just this one (SingleProcess)."""
    rank: int
    world_size: int

    def all_gather(self, obj: Any) -> list[Any]: ...

    def broadcast(self, obj: Any) -> Any: ...


class SingleProcess:
    rank, world_size = 0, 1

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast(self, obj: Any) -> Any:
        return obj


@dataclass
class IndexSummary:
    images: int = 0  # found under the folder
    added: int = 0
    already: int = 0  # skipped: their content hash was in the gallery (or earlier in this run)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of unreadable images
    without_metadata: int = 0
    gallery_size: int = 0
    seconds: float = 0.0


@dataclass
class _Record:
    relative: str  # to the images folder (metadata lookups)
    stored: str  # to the gallery's root (Item.path)
    content_hash: str
    data: bytes


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder`, recursively, sorted (the one folder listing of reidkit.features.pipeline)."""
    from reidkit.features.pipeline import folder_images

    return folder_images(folder)


def decode_image(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB; OSError / ValueError for data that is not a whole image."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image.convert("RGB"))


def _read(paths: Sequence[Path], images_root: Path, gallery_root: str) -> tuple[list[_Record], list[tuple]]:
    records, failed = [], []
    for path in paths:
        relative = path.relative_to(images_root).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            failed.append((relative, exc.strerror or str(exc)))
            continue
        stored = Path(os.path.relpath(path.absolute(), gallery_root)).as_posix()
        records.append(_Record(relative, stored, hashlib.sha256(data).hexdigest(), data))
    return records, failed


class _Batches:
    """One run's shared state: the gallery (on the writing processes), embedder, metadata and counters."""

    def __init__(self, gallery: Gallery | None, embedder: EmbedderLike, metadata: MetadataSource,
                 workers: Workers) -> None:
        self.gallery, self.embedder, self.metadata, self.workers = gallery, embedder, metadata, workers
        self.gather = gallery is None or gallery.single_writer
        self.summary = IndexSummary()

    def known(self, hashes: list[str]) -> set[str]:
        if not self.gather:
            return self.gallery.known_hashes(hashes)
        everyone = [h for part in self.workers.all_gather(hashes) for h in part]
        found = self.gallery.known_hashes(everyone) if self.workers.rank == 0 else None
        return self.workers.broadcast(found)

    def embed(self, records: list[_Record]) -> tuple[np.ndarray, list[Item]]:
        images, items = [], []
        for record in records:
            try:
                images.append(decode_image(record.data))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                self.summary.failed.append((record.relative, f"cannot decode: {exc}"))
                continue
            items.append(self._item(record))
        vectors = self.embedder.embed(images) if images else None
        return vectors, items

    def _item(self, record: _Record) -> Item:
        meta = self.metadata.lookup(record.relative)
        if meta is None:
            self.summary.without_metadata += 1
            return Item(record.stored, content_hash=record.content_hash)
        return Item(record.stored, meta.camera, meta.timestamp, meta.track, dict(meta.tags), record.content_hash,
                    meta.pid)

    def insert(self, vectors: np.ndarray | None, items: list[Item]) -> None:
        parts = self.workers.all_gather((vectors, items)) if self.gather else [(vectors, items)]
        if self.gallery is None:
            return
        parts = [(v, i) for v, i in parts if i]
        if parts:
            self.gallery.add(np.concatenate([v for v, _ in parts]), [it for _, i in parts for it in i])

    def step(self, paths: Sequence[Path], images_root: Path, gallery_root: str) -> int:
        """Index one batch of this process's shard; returns the images all processes handled in this step."""
        records, failed = _read(paths, images_root, gallery_root)
        self.summary.failed += failed
        known = self.known([r.content_hash for r in records])
        new = [r for r in records if r.content_hash not in known]
        self.summary.already += len(records) - len(new)
        self.insert(*self.embed(new))
        return sum(self.workers.all_gather(len(paths)))


def _prepare(gallery: Gallery | None, embedder: EmbedderLike, images_root: Path, workers: Workers,
             notes: dict[str, Any]) -> str:
    """Record the model, root and notes on rank 0 (refusing another model's gallery); every process gets the root."""
    root = None
    if workers.rank == 0:
        gallery.set_fingerprint(embedder.fingerprint)
        gallery.set_root(images_root)
        for key, value in notes.items():
            if gallery.notes(key) is None:
                gallery.set_note(key, value)
        root = gallery.root
    root = workers.broadcast(root)
    if gallery is not None and workers.rank != 0:
        gallery.check_fingerprint(embedder.fingerprint, "add")
    return root


def index_images(gallery: Gallery | None, embedder: EmbedderLike, images: str | os.PathLike, *,
                 metadata: MetadataSource | None = None, batch_size: int = 64, workers: Workers | None = None,
                 progress: bool = False, notes: dict[str, Any] | None = None) -> IndexSummary:
    """Index every image under `images` (see the module doc). gallery: None on the processes that do not write
    (torchrun ranks > 0 against a single-writer gallery). progress: a progress bar (images/s) on stderr.
    notes: Gallery notes recorded unless already there (the CLI's "weights" and "pattern")."""
    workers = workers or SingleProcess()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GalleryError(f"--batch {batch_size!r}: expected an integer >= 1")
    start = time.monotonic()
    images_root = Path(images).expanduser().absolute()
    files = find_images(images_root)
    gallery_root = _prepare(gallery, embedder, images_root, workers, notes or {})
    before = len(gallery) if gallery is not None and workers.rank == 0 else 0
    run = _Batches(gallery, embedder, metadata or NoMetadata(), workers)
    shard = files[workers.rank::workers.world_size]
    steps = -(-len(files[0::workers.world_size]) // batch_size)  # the largest shard's: every process takes part
    with tqdm(total=len(files), unit="img", desc="indexing", disable=not (progress and workers.rank == 0),
              file=sys.stderr, dynamic_ncols=True) as bar:
        for step in range(steps):
            bar.update(run.step(shard[step * batch_size:(step + 1) * batch_size], images_root, gallery_root))
    summary = _merge(run.summary, workers)
    if gallery is not None and workers.rank == 0:
        gallery.build_index()
        summary.gallery_size = len(gallery)
        summary.added = summary.gallery_size - before
    summary.images, summary.seconds = len(files), time.monotonic() - start
    return summary


def _merge(mine: IndexSummary, workers: Workers) -> IndexSummary:
    """Every process's skipped counts and failures added up (on every process)."""
    total = IndexSummary()
    for part in workers.all_gather(mine):
        total.already += part.already
        total.failed += part.failed
        total.without_metadata += part.without_metadata
    total.failed.sort()
    return total


def index_with_model(db: str | os.PathLike, weights: str | os.PathLike, images: str | os.PathLike, *,
                     pattern: str | None = None, device: str = "cpu", batch_size: int = 64) -> IndexSummary:
    """`reidkit index --weights W --images DIR --db DB [--pattern P]` in one process, without a progress bar
    (what `reidkit demo` runs at its end)."""
    from reidkit.deploy.embedder import Embedder
    from reidkit.gallery.metadata import NamePattern

    embedder = Embedder.load(weights, device=device, batch_size=batch_size)
    notes = {"weights": os.path.abspath(weights), **({"pattern": pattern} if pattern else {})}
    with Gallery(db) as gallery:
        return index_images(gallery, embedder, images, metadata=NamePattern(pattern) if pattern else None,
                            batch_size=batch_size, notes=notes)
