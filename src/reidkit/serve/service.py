"""What the HTTP endpoints do, without HTTP: search a gallery by an uploaded crop or by an indexed item, read
items and their image files, add uploaded crops and delete items.

    service = GalleryService(gallery, embedder, uploads=Path("gallery/uploads"))
    service.search(SearchQuery(item_id=12, topk=20, exclude_same_camera=True))   # JSON-ready dict

A gallery handle is not safe to use from two threads at once (SQLite transactions, the FAISS cache), so every
gallery call holds one lock; embedding an upload happens outside it.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reidkit.gallery.base import Gallery, Hit, Item
from reidkit.gallery.metadata import format_time
from reidkit.serve.errors import ApiError
from reidkit.serve.images import Upload, media_type
from reidkit.utils.io import atomic_open

MAX_TOPK = 500
MAX_ID = 2**63 - 1  # item ids are SQLite / Milvus int64 keys


@dataclass
class SearchQuery:
    """One search: an uploaded crop or the id of an indexed item, and the filters of Gallery.search.
    exclude_same_camera drops the query's own camera (an item's, or query_camera for an upload)."""
    upload: Upload | None = None
    item_id: int | None = None
    topk: int = 20
    cameras: list[int] | None = None
    exclude_cameras: list[int] = field(default_factory=list)
    exclude_same_camera: bool = False
    query_camera: int | None = None
    since: float | None = None
    until: float | None = None


@dataclass
class NewItems:
    """Metadata given to every crop of one POST /api/items."""
    camera: int | None = None
    timestamp: float | None = None
    track: int | None = None
    pid: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)


def item_json(item: Item) -> dict[str, Any]:
    """An item as the API shows it (id_str: the id as text, exact in JavaScript beyond 2^53)."""
    time_text = None if item.timestamp is None else format_time(item.timestamp) + " UTC"
    return {"id": item.id, "id_str": str(item.id), "path": item.path, "camera": item.camera,
            "time": item.timestamp, "time_text": time_text,
            "track": item.track, "pid": item.pid, "tags": item.tags, "image": f"/api/items/{item.id}/image"}


def check_topk(topk: int) -> int:
    if not 1 <= topk <= MAX_TOPK:
        raise ApiError(f"topk={topk}: expected an integer from 1 to {MAX_TOPK}")
    return topk


def check_item_id(item_id: int) -> int:
    if not 0 <= item_id <= MAX_ID:
        raise ApiError(f"item id {item_id}: expected an integer from 0 to {MAX_ID}", 404)
    return item_id


class GalleryService:
    """The endpoints' work over one gallery and one embedder (see the module docstring). threshold: the
    same-person cosine threshold (None: the embedder's calibrated one, if any); uploads: the folder that added
    crops are written to (None: adding is unavailable)."""

    def __init__(self, gallery: Gallery, embedder: Any, *, threshold: float | None = None,
                 uploads: Path | None = None) -> None:
        self.gallery, self.embedder, self.uploads = gallery, embedder, uploads
        self.threshold_source = "given" if threshold is not None else ("calibrated" if embedder.threshold is not None
                                                                       else None)
        self.threshold = threshold if threshold is not None else embedder.threshold
        self.lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self.lock:
            size = len(self.gallery)
        fp = self.embedder.fingerprint
        return {"status": "ok", "model": fp.get("model"), "feature_dim": fp.get("feature_dim"),
                "input_size": fp.get("input_size"), "gallery_size": size, "threshold": self.threshold,
                "threshold_source": self.threshold_source, "can_add": self.uploads is not None}

    def _item(self, item_id: int) -> Item:
        found = self.gallery.items([check_item_id(item_id)])
        if not found:
            raise ApiError(f"no item with id {item_id} in the gallery", 404)
        return found[0]

    def item(self, item_id: int) -> dict[str, Any]:
        with self.lock:
            return item_json(self._item(item_id))

    def image_file(self, item_id: int) -> tuple[Path, str]:
        """The indexed file of an item (its path from the database, under the gallery's root) and its type."""
        with self.lock:
            item, root = self._item(item_id), self.gallery.root
        if root is None:
            raise ApiError(f"the gallery records no image folder (root), so item {item_id} has no image", 404)
        path, kind = Path(root) / item.path, media_type(item.path)
        if kind is None:
            raise ApiError(f"item {item_id} ({item.path}) is not an image file this server shows", 404)
        if not path.is_file():
            raise ApiError(f"the image of item {item_id} ({item.path}) is no longer on disk", 404)
        return path, kind

    def search(self, query: SearchQuery) -> dict[str, Any]:
        check_topk(query.topk)
        if (query.upload is None) == (query.item_id is None):
            raise ApiError("send either an image (field 'image') or the id of an indexed item (field 'item_id')")
        vector = None if query.upload is None else self.embedder.embed([query.upload.pixels])[0]
        with self.lock:
            size = len(self.gallery)
            if size == 0:
                raise ApiError("the gallery is empty: index crops first (reidkit index --db ...) or add them "
                               "(POST /api/items)", 409)
            own = None if query.item_id is None else self._item(query.item_id)
            if own is not None:
                vector = self.gallery.vectors([own.id])[0]
            hits = self.gallery.search(vector, min(size, query.topk + (own is not None)), camera=query.cameras,
                                       exclude_camera=self._excluded(query, own) or None, since=query.since,
                                       until=query.until)
        hits = [hit for hit in hits if own is None or hit.id != own.id][:query.topk]
        return {"query": item_json(own) if own is not None else {"upload": True},
                "threshold": self.threshold, "gallery_size": size, "hits": [self._hit_json(h) for h in hits]}

    @staticmethod
    def _excluded(query: SearchQuery, own: Item | None) -> list[int]:
        excluded = list(query.exclude_cameras)
        if query.exclude_same_camera:
            camera = own.camera if own is not None else query.query_camera
            if camera is None:
                raise ApiError("exclude_same_camera needs the query's camera: search by an item id whose camera "
                               "is known, or give query_camera with the upload")
            excluded.append(camera)
        return excluded

    def _hit_json(self, hit: Hit) -> dict[str, Any]:
        same = None if self.threshold is None else bool(hit.score > self.threshold)
        return {**item_json(hit.item), "score": round(float(hit.score), 6), "same_person": same}

    # -- writing ----------------------------------------------------------------------------------------------
    def add(self, uploads: Sequence[Upload], meta: NewItems) -> list[dict[str, Any]]:
        """Embeds and stores the crops (files written into the uploads folder, named by their content hash)."""
        if self.uploads is None:
            raise ApiError("this server has no folder for added crops: restart it with --uploads DIR", 409)
        if not uploads:
            raise ApiError("send at least one crop in the field 'image'")
        if meta.timestamp is not None and not math.isfinite(meta.timestamp):
            raise ApiError(f"timestamp={meta.timestamp}: expected a finite number of seconds")
        vectors = self.embedder.embed([u.pixels for u in uploads])
        digests = [hashlib.sha256(u.data).hexdigest() for u in uploads]
        with self.lock:
            self.gallery.set_fingerprint(self.embedder.fingerprint)
            self.gallery.set_root(self.uploads)
            root, known = Path(self.gallery.root), self.gallery.known_hashes(digests)
            # A crop the gallery holds already (same bytes) keeps its item: add returns that id, no file is written.
            paths = [self._store(u, d) if d not in known else self.uploads / "held" for u, d in zip(uploads, digests)]
            items = [Item(Path(os.path.relpath(path, root)).as_posix(), meta.camera, meta.timestamp, meta.track,
                          dict(meta.tags), digest, meta.pid) for path, digest in zip(paths, digests)]
            ids = self.gallery.add(vectors, items)
            return [item_json(item) for item in self.gallery.items(ids)]

    def _store(self, upload: Upload, digest: str) -> Path:
        path = self.uploads / f"{digest}{upload.suffix}"
        if not path.is_file():
            with atomic_open(path, "wb") as handle:
                handle.write(upload.data)
        return path.absolute()

    def delete(self, item_id: int) -> dict[str, Any]:
        """Removes the item; its file too when this server wrote it (an indexed user's file is never deleted)."""
        with self.lock:
            item, root = self._item(item_id), self.gallery.root
            self.gallery.remove([item.id])
            size = len(self.gallery)
        if root is not None and self.uploads is not None:
            path = (Path(root) / item.path).resolve()
            if path.parent == self.uploads.resolve() and path.is_file():
                path.unlink()
        return {"deleted": item_json(item), "gallery_size": size}
