"""The `Gallery` interface: a database of image crops (an L2-normalised vector + metadata each), searched by
cosine similarity (inner product), with filters on camera and time.

    g = Gallery("gallery/")                        # a folder: SQLite + FAISS, nothing to start (default)
    g = Gallery("http://host:19530", token="...")  # a Milvus server; "crops.db": a Milvus Lite folder
    ids = g.add(vectors, [Item("cam1/0001.jpg", camera=1, timestamp=1714557600.0), ...])
    hits = g.search(vector, topk=20, camera=1, since=1714557600.0)   # [Hit(id, score, item), ...]

The backend is chosen by the URI's scheme through the BACKENDS registry (`uri_scheme`). This base class
checks every argument once (shapes, topk, the model fingerprint) and leaves storage to the backends.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

import numpy as np

from reidkit.errors import GalleryError
from reidkit.registry import Registry

BACKENDS: Registry[type["Gallery"]] = Registry("gallery backend")
URI_HELP = "a gallery folder (SQLite + FAISS), http(s)://HOST:19530 (a Milvus server) or a *.db Milvus Lite path"


def uri_scheme(uri: str | os.PathLike) -> str:
    """"http" / "https" (Milvus server) and any other "scheme://"; "lite" for a path ending in .db (Milvus
    Lite); "folder" (SQLite + FAISS) otherwise."""
    text = os.fspath(uri)
    if "://" in text:
        return text.split("://", 1)[0].lower()
    return "lite" if text.rstrip("/\\").lower().endswith(".db") else "folder"


@dataclass
class Item:
    """One crop. path: relative to the gallery's root (the indexed folder); timestamp: seconds since 1970 (UTC)."""
    path: str
    camera: int | None = None
    timestamp: float | None = None
    track: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    pid: int | None = None
    id: int | None = None


@dataclass
class Hit:
    id: int
    score: float  # inner product of unit vectors = cosine similarity
    item: Item


@dataclass(frozen=True)
class SearchFilter:
    """cameras: keep only these (None: all); excluded: drop these (items without a camera are kept);
    since / until: keep items whose timestamp lies in [since, until] (items without a time are dropped)."""
    cameras: tuple[int, ...] | None = None
    excluded: tuple[int, ...] = ()
    since: float | None = None
    until: float | None = None

    @property
    def active(self) -> bool:
        return self.cameras is not None or bool(self.excluded) or self.since is not None or self.until is not None


def _cameras(name: str, value: int | Iterable[int] | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise GalleryError(f"{name}={value!r}: expected a camera id (an integer) or a list of them")
    return tuple(int(v) for v in values)


def _seconds(name: str, value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, datetime):
        from reidkit.gallery.metadata import datetime_seconds

        return datetime_seconds(value)
    raise GalleryError(f"{name}={value!r}: expected seconds since 1970 or a datetime")


def make_filter(camera: int | Iterable[int] | None = None, exclude_camera: int | Iterable[int] | None = None,
                since: float | datetime | None = None, until: float | datetime | None = None) -> SearchFilter:
    since_s, until_s = _seconds("since", since), _seconds("until", until)
    if since_s is not None and until_s is not None and since_s > until_s:
        raise GalleryError(f"since ({since}) is after until ({until}); expected since <= until")
    return SearchFilter(_cameras("camera", camera), _cameras("exclude_camera", exclude_camera) or (),
                        since_s, until_s)


def describe_fingerprint(fp: dict | None) -> str:
    if not fp:
        return "an unknown model"
    size = fp.get("input_size") or ["?", "?"]
    weights = str(fp.get("weights_sha256") or "?")[:12]
    precision = f", {fp['precision']}" if fp.get("precision") else ""
    return (f"model {fp.get('model', '?')!r} (weights sha256 {weights}..., input {size[0]}x{size[1]}, "
            f"{fp.get('feature_dim', '?')}-d features{precision})")


def normalise_fingerprint(fp: dict) -> dict:
    """An Embedder fingerprint (reidkit.deploy: model, weights hash, preprocessing, feature size, precision),
    JSON-normalised (tuples become lists) so that a stored and a fresh one compare equal."""
    if not isinstance(fp, dict) or "model" not in fp:
        raise GalleryError(f"fingerprint {fp!r}: expected the Embedder's dict with at least 'model'")
    try:
        return json.loads(json.dumps(fp, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"fingerprint {fp!r} cannot be stored as JSON: {exc}") from None


def fallback_hash(vector: np.ndarray, path: str) -> str:
    """Content hash of an item added without one (Python API): its path and vector bytes."""
    return hashlib.sha256(path.encode() + b"\0" + np.ascontiguousarray(vector, np.float32).tobytes()).hexdigest()


def check_topk(topk: Any, count: int) -> int:
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or not 1 <= topk <= count:
        raise GalleryError(f"topk={topk!r}: expected an integer from 1 to the gallery size ({count})")
    return int(topk)


class Gallery(abc.ABC):
    """`Gallery(uri, token=None, **options)` (or `Gallery.open`) returns the backend registered for the URI's
    scheme. Common options: must_exist (refuse a URI that holds no gallery yet), exact_limit (exact search below
    this many items, IVF above), nlist (IVF lists; default 4 sqrt(n)), nprobe (IVF lists probed per query)."""

    single_writer: bool = True  # the database admits one writing process (parallel indexers gather to one)

    def __new__(cls, uri: str | os.PathLike, *args: Any, **options: Any) -> "Gallery":
        if cls is Gallery:
            from reidkit.gallery import milvus, sqlite_faiss  # noqa: F401  (each registers its backend)

            cls = BACKENDS.get(uri_scheme(uri))
        return super().__new__(cls)

    @classmethod
    def open(cls, uri: str | os.PathLike, *, token: str | None = None, **options: Any) -> "Gallery":
        return cls(uri, token=token, **options)

    def __init__(self, uri: str | os.PathLike, **options: Any) -> None:
        self.uri = os.fspath(uri)
        self._explicit: dict[str, int] = {}

    # -- index settings ---------------------------------------------------------------------------------------
    def _configure(self, **settings: int | None) -> None:
        """Index settings given to this handle; the ones left None come from the gallery (what `build_index`
        stored) or the defaults (exact_limit 100,000; nlist 4 sqrt(n); nprobe 32)."""
        for key, value in settings.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise GalleryError(f"{key}={value!r}: expected an integer >= 1")
            self._explicit[key] = int(value)

    def setting(self, key: str) -> int | None:
        """exact_limit, nlist or nprobe in force: given to this handle, else stored, else the default."""
        from reidkit.retrieval import EXACT_LIMIT

        if key in self._explicit:
            return self._explicit[key]
        stored = self._read_meta(f"index.{key}")
        return stored if stored is not None else {"exact_limit": EXACT_LIMIT, "nlist": None, "nprobe": 32}[key]

    def _store_settings(self) -> None:
        """Settings given explicitly become the gallery's own (a later search or rebuild uses them)."""
        for key, value in self._explicit.items():
            if self._read_meta(f"index.{key}") != value:
                self._write_meta(f"index.{key}", value)

    def set_search_params(self, *, nprobe: int | None = None) -> None:
        """IVF lists probed per query, for this handle (stored by the next `build_index`)."""
        self._configure(nprobe=nprobe)
        self._search_params_changed()

    def _search_params_changed(self) -> None:
        """Hook: a backend that caches the search parameters refreshes them."""

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # -- metadata of the collection ---------------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict | None:
        return self._read_meta("fingerprint")

    @property
    def root(self) -> str | None:
        """The folder the item paths are relative to (set by the first `reidkit index`)."""
        return self._read_meta("root")

    @property
    def dim(self) -> int | None:
        return self._read_meta("dim")

    def check_fingerprint(self, fingerprint: dict, action: str = "search") -> None:
        """GalleryError naming both models unless the gallery holds no fingerprint yet or the same one."""
        stored, new = self.fingerprint, normalise_fingerprint(fingerprint)
        if stored is not None and stored != new:
            raise GalleryError(f"{self.uri} holds features of {describe_fingerprint(stored)}; refusing to {action} "
                               f"with features of {describe_fingerprint(new)}: use the gallery's model or another --db")

    def set_fingerprint(self, fingerprint: dict) -> None:
        self.check_fingerprint(fingerprint, "add")
        if self.fingerprint is None:
            self._write_meta("fingerprint", normalise_fingerprint(fingerprint))

    def set_root(self, root: str | os.PathLike) -> None:
        if self.root is None:
            self._write_meta("root", os.path.abspath(root))

    def notes(self, key: str) -> Any:
        """A free note stored with the gallery (e.g. "weights": the checkpoint it was indexed with)."""
        return self._read_meta(f"note.{key}")

    def set_note(self, key: str, value: Any) -> None:
        self._write_meta(f"note.{key}", value)

    # -- writing ----------------------------------------------------------------------------------------------
    def add(self, vectors: Any, items: Sequence[Item]) -> list[int]:
        """Insert [N, D] float32 vectors (L2-normalised here) with their items; returns the N ids. An item whose
        content_hash is already in the gallery is not inserted again: its existing id is returned."""
        x = self._check_vectors("vectors", vectors)
        if len(items) != len(x):
            raise GalleryError(f"got {len(x)} vectors but {len(items)} items; expected one item per vector row")
        dim = self.dim
        if dim is not None and x.shape[1] != dim:
            raise GalleryError(f"{self.uri} holds {dim}-d vectors; got {x.shape[1]}-d vectors")
        if not len(x):
            return []
        if dim is None:
            self._write_meta("dim", int(x.shape[1]))
        done = [_checked_item(item, row, index) for index, (item, row) in enumerate(zip(items, x))]
        return self._add(x, done)

    def remove(self, what: str | Iterable[int]) -> int:
        """Delete items by ids, or by a glob pattern on their paths (e.g. "cam3/*"); returns how many went."""
        ids = self._ids_matching(what) if isinstance(what, str) else [int(i) for i in what]
        return self._remove_ids(ids) if ids else 0

    # -- reading ----------------------------------------------------------------------------------------------
    def search(self, vectors: Any, topk: int = 20, *, camera: int | Iterable[int] | None = None,
               exclude_camera: int | Iterable[int] | None = None, since: float | datetime | None = None,
               until: float | datetime | None = None) -> list[Hit] | list[list[Hit]]:
        """The topk most similar items, best first: a list of Hits for one vector [D], one list per query for
        [Q, D]. Filters run inside the database; fewer than topk hits come back when fewer items pass them."""
        single = np.ndim(vectors) == 1
        q = self._check_vectors("query", np.atleast_2d(vectors) if single else vectors)
        count = len(self)
        if count == 0:
            raise GalleryError(f"the gallery {self.uri} is empty; add images first (reidkit index --db {self.uri})")
        if q.shape[1] != self.dim:
            raise GalleryError(f"the query has {q.shape[1]}-d features; {self.uri} holds {self.dim}-d vectors")
        check_topk(topk, count)
        hits = self._search(q, int(topk), make_filter(camera, exclude_camera, since, until))
        return hits[0] if single else hits

    def get(self, item_id: int) -> Item:
        found = self.items([item_id])
        if not found:
            raise GalleryError(f"{self.uri} has no item with id {item_id}")
        return found[0]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """[len(ids), D] float32 stored vectors, in the order of `ids`."""
        ids = [int(i) for i in ids]
        found = self._vectors(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise GalleryError(f"{self.uri} has no item with id {missing[0]} ({len(missing)} ids missing)")
        return np.stack([found[i] for i in ids]) if ids else np.zeros((0, self.dim or 0), np.float32)

    @staticmethod
    def _check_vectors(name: str, vectors: Any) -> np.ndarray:
        if hasattr(vectors, "detach"):
            vectors = vectors.detach().cpu().numpy()
        x = np.asarray(vectors)
        if x.ndim != 2 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise GalleryError(f"{name} has shape {x.shape} and dtype {x.dtype}; expected [N, D] float32 features")
        x = np.array(x, dtype=np.float32)  # a copy: normalised below, never the caller's array
        if not np.isfinite(x).all():
            raise GalleryError(f"{name} contains NaN or inf")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if len(x) and (norms == 0).any():
            row = int(np.flatnonzero(norms[:, 0] == 0)[0])
            raise GalleryError(f"{name} row {row} is all zeros; expected a feature")
        return x / norms if len(x) else x

    # -- backend hooks ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _read_meta(self, key: str) -> Any: ...

    @abc.abstractmethod
    def _write_meta(self, key: str, value: Any) -> None: ...

    @abc.abstractmethod
    def _add(self, vectors: np.ndarray, items: list[Item]) -> list[int]: ...

    @abc.abstractmethod
    def _search(self, queries: np.ndarray, topk: int, where: SearchFilter) -> list[list[Hit]]: ...

    @abc.abstractmethod
    def items(self, ids: Sequence[int]) -> list[Item]:
        """The items of `ids` that exist, in the order of `ids`."""

    @abc.abstractmethod
    def _vectors(self, ids: list[int]) -> dict[int, np.ndarray]: ...

    @abc.abstractmethod
    def _ids_matching(self, pattern: str) -> list[int]: ...

    @abc.abstractmethod
    def _remove_ids(self, ids: list[int]) -> int: ...

    @abc.abstractmethod
    def known_hashes(self, hashes: Sequence[str]) -> set[str]:
        """The content hashes among `hashes` that the gallery holds (what a resumed index run skips)."""

    @abc.abstractmethod
    def build_index(self) -> None:
        """Bring the search index up to date (exact or IVF by size); searching does this itself when needed."""

    @abc.abstractmethod
    def close(self) -> None: ...


def _optional_int(item: Item, name: str, index: int) -> int | None:
    value = getattr(item, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GalleryError(f"item {index} ({item.path}): {name}={value!r}; expected an integer or None")
    return int(value)


def _checked_item(item: Item, vector: np.ndarray, index: int) -> Item:
    if not isinstance(item, Item) or not isinstance(item.path, str) or not item.path:
        raise GalleryError(f"item {index}: {item!r}; expected an Item with a non-empty path")
    timestamp = item.timestamp
    if timestamp is not None and not (isinstance(timestamp, (int, float, np.floating)) and np.isfinite(timestamp)):
        raise GalleryError(f"item {index} ({item.path}): timestamp={timestamp!r}; expected seconds since 1970 or None")
    if not isinstance(item.tags, dict):
        raise GalleryError(f"item {index} ({item.path}): tags={item.tags!r}; expected a dict")
    try:
        tags = json.loads(json.dumps(item.tags))
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"item {index} ({item.path}): tags cannot be stored as JSON: {exc}") from None
    return Item(item.path, _optional_int(item, "camera", index), None if timestamp is None else float(timestamp),
                _optional_int(item, "track", index), tags, item.content_hash or fallback_hash(vector, item.path),
                _optional_int(item, "pid", index))
