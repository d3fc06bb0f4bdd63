"""The scale-out gallery: a Milvus collection, through pymilvus's MilvusClient.

    Gallery("http://HOST:19530", token="user:password")   # a Milvus server (or https://, a managed cluster)
    Gallery("crops.db")                                    # Milvus Lite: a local folder, served in-process

One collection (default "reidkit_gallery") per gallery: int64 primary key derived from the content hash (so a
re-insert of the same crop from any process replaces itself instead of duplicating), the float vector (inner
product), path, nullable camera / timestamp / track / pid, tags (JSON), content_hash. The gallery's own
metadata (format, dim, fingerprint, root) are collection properties "reidkit.<key>". Exact (FLAT) index below
`exact_limit` items, IVF_FLAT above (`build_index`); filters are Milvus boolean expressions. A server admits
many writers, so parallel indexers insert directly; a Milvus Lite folder is one process's (single_writer).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reidkit.errors import GalleryError
from reidkit.gallery.base import BACKENDS, URI_HELP, Gallery, Hit, Item, SearchFilter, uri_scheme
from reidkit.retrieval import auto_kind

DEFAULT_COLLECTION = "reidkit_gallery"
FORMAT = "reidkit-gallery"
_PROPERTY = "reidkit."
_ITEM_FIELDS = ["path", "camera", "timestamp", "track", "pid", "tags", "content_hash"]
_MAX_PATH = 4096
_INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT"}


def hash_id(content_hash: str) -> int:
    """A positive int64 primary key from a content hash (63 bits of its sha256: collisions ~ n^2 / 2^64)."""
    return int.from_bytes(hashlib.sha256(content_hash.encode()).digest()[:8], "big") >> 1


def _item(entity: dict, item_id: int) -> Item:
    tags = entity.get("tags") or {}
    return Item(entity["path"], entity.get("camera"), entity.get("timestamp"), entity.get("track"),
                tags if isinstance(tags, dict) else json.loads(tags), entity.get("content_hash", ""),
                entity.get("pid"), int(item_id))


def filter_expression(where: SearchFilter) -> str:
    """The Milvus boolean expression of a SearchFilter ("" when nothing is filtered)."""
    terms = []
    if where.cameras is not None:
        terms.append(f"camera in {list(where.cameras)}")
    if where.excluded:
        terms.append(f"(camera is null or camera not in {list(where.excluded)})")
    if where.since is not None:
        terms.append(f"timestamp >= {where.since!r}")
    if where.until is not None:
        terms.append(f"timestamp <= {where.until!r}")
    return " and ".join(terms)


def _client_error() -> tuple[type[BaseException], ...]:
    from pymilvus.exceptions import MilvusException

    return (MilvusException, ConnectionError, OSError)


@BACKENDS.register("http")
@BACKENDS.register("https")
@BACKENDS.register("lite")
class MilvusGallery(Gallery):
    """options: token (server), collection, must_exist, exact_limit, nlist, nprobe, timeout (seconds)."""

    def __init__(self, uri: str | os.PathLike, *, token: str | None = None, collection: str = DEFAULT_COLLECTION,
                 must_exist: bool = False, exact_limit: int | None = None, nlist: int | None = None,
                 nprobe: int | None = None, timeout: float = 30.0) -> None:
        super().__init__(uri)
        self.local = uri_scheme(self.uri) == "lite"
        self.single_writer = self.local
        self.collection = collection
        self._configure(exact_limit=exact_limit, nlist=nlist, nprobe=nprobe)
        self._meta_cache: dict[str, Any] | None = None
        self._existing = False  # a collection once seen stays (dropping it under a live gallery is not supported)
        self._client = self._connect(token, timeout)
        try:
            self._check_collection(must_exist)
        except BaseException:
            self.close()  # also ends the Milvus Lite server started for this folder
            raise

    def _check_collection(self, must_exist: bool) -> None:
        if must_exist and not self._exists():
            raise GalleryError(f"no gallery collection {self.collection!r} at {self.uri}; build one with "
                               f"reidkit index --db {self.uri} --weights ... --images ...")
        if self._exists():
            self._check_format()
            self._call("load_collection", self.collection)  # a collection is released after a restart or reopen

    def _connect(self, token: str | None, timeout: float) -> Any:
        from pymilvus import MilvusClient

        target = self.uri
        if self.local:
            path = Path(self.uri).expanduser()
            if path.is_file():
                raise GalleryError(f"--db {path} is a file; a Milvus Lite database is a folder ending in .db "
                                   f"({URI_HELP})")
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path.absolute())
        try:
            return MilvusClient(uri=target, token=token or "", timeout=timeout)
        except _client_error() as exc:
            raise GalleryError(f"cannot connect to Milvus at {self.uri}: {exc}") from None

    def close(self) -> None:
        """Close the connection; for Milvus Lite also stop the in-process server pymilvus started for the file."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self.local:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(Path(self.uri).expanduser().absolute()))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            raise GalleryError(f"the gallery {self.uri} is closed")
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except _client_error() as exc:
            raise GalleryError(f"Milvus at {self.uri}, collection {self.collection!r}: {method} failed: "
                               f"{exc}") from None

    # -- collection and its properties ------------------------------------------------------------------------
    def _exists(self) -> bool:
        self._existing = self._existing or bool(self._call("has_collection", self.collection))
        return self._existing

    def _properties(self) -> dict[str, Any]:
        if self._meta_cache is None:
            if not self._exists():
                return {}
            raw = self._call("describe_collection", self.collection).get("properties") or {}
            self._meta_cache = {k[len(_PROPERTY):]: json.loads(v) for k, v in raw.items() if k.startswith(_PROPERTY)}
        return self._meta_cache

    def _check_format(self) -> None:
        if self._properties().get("format") != FORMAT:
            raise GalleryError(f"collection {self.collection!r} at {self.uri} is not a reidkit gallery "
                               f"(no property {_PROPERTY}format); use another collection name")

    def _read_meta(self, key: str) -> Any:
        return self._properties().get(key)

    def _write_meta(self, key: str, value: Any) -> None:
        if key == "dim" and not self._exists():
            self._create(int(value))
            return
        if not self._exists():
            dim = value.get("feature_dim") if key == "fingerprint" else None
            if not dim:
                raise GalleryError(f"{self.uri}: the collection does not exist yet; add vectors first")
            self._create(int(dim))
        self._call("alter_collection_properties", self.collection,
                   properties={_PROPERTY + key: json.dumps(value, sort_keys=True)})
        self._meta_cache = None

    def _create(self, dim: int) -> None:
        from pymilvus import DataType

        schema = self._call("create_schema", auto_id=False, enable_dynamic_field=False,
                            description="reidkit gallery of image crops")
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("path", DataType.VARCHAR, max_length=_MAX_PATH)
        for name in ("camera", "track", "pid"):
            schema.add_field(name, DataType.INT64, nullable=True)
        schema.add_field("timestamp", DataType.DOUBLE, nullable=True)
        schema.add_field("tags", DataType.JSON)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=128)
        self._call("create_collection", self.collection, schema=schema, consistency_level="Strong")
        self._create_index("flat", 0)
        self._call("alter_collection_properties", self.collection, properties={
            _PROPERTY + "format": json.dumps(FORMAT), _PROPERTY + "dim": json.dumps(dim)})
        self._meta_cache = None

    def _index_params(self, kind: str, count: int) -> Any:
        params = self._call("prepare_index_params")
        extra = {"nlist": self.setting("nlist") or max(1, int(4 * np.sqrt(count)))} if kind == "ivf" else {}
        params.add_index(field_name="vector", index_type=_INDEX_TYPES[kind], metric_type="IP", params=extra)
        return params

    def build_index(self) -> None:
        """FLAT below exact_limit items, IVF_FLAT above: re-created (collection released meanwhile) on a change."""
        if not self._exists():
            return
        # Seal the inserted rows into segments: Milvus Lite searches unflushed rows slowly (20,000 x 512 measured:
        # 2.1 s a query before the flush, 0.15 s after).
        self._call("flush", self.collection)
        self._store_settings()
        count = len(self)
        kind = auto_kind(count, self.setting("exact_limit"))
        if self._call("describe_index", self.collection, "vector").get("index_type") == _INDEX_TYPES[kind]:
            return
        self._call("release_collection", self.collection)
        self._call("drop_index", self.collection, "vector")
        self._create_index(kind, count)

    def _create_index(self, kind: str, count: int) -> None:
        # Milvus Lite builds synchronously and lacks the timestamp call pymilvus polls a server's build with.
        self._call("create_index", self.collection, self._index_params(kind, count), sync=not self.local)
        self._call("load_collection", self.collection)

    # -- writing ----------------------------------------------------------------------------------------------
    def _add(self, vectors: np.ndarray, items: list[Item]) -> list[int]:
        ids = [hash_id(it.content_hash) for it in items]
        known = self.known_hashes([it.content_hash for it in items])
        rows, seen = [], set(known)
        for item_id, item, vector in zip(ids, items, vectors):
            if item.content_hash in seen:
                continue
            seen.add(item.content_hash)
            if len(item.path.encode()) > _MAX_PATH:
                raise GalleryError(f"item path {item.path[:80]!r}... is longer than {_MAX_PATH} bytes")
            rows.append({"id": item_id, "vector": vector, "path": item.path, "camera": item.camera,
                         "timestamp": item.timestamp, "track": item.track, "pid": item.pid, "tags": item.tags,
                         "content_hash": item.content_hash})
        if rows:
            self._call("upsert", self.collection, rows)  # upsert: two processes adding one crop leave one row
        return ids

    def known_hashes(self, hashes: Sequence[str]) -> set[str]:
        if not hashes or not self._exists():
            return set()
        found = self._call("get", self.collection, ids=[hash_id(h) for h in hashes], output_fields=["content_hash"])
        return {row["content_hash"] for row in found} & set(hashes)

    def _ids_matching(self, pattern: str) -> list[int]:
        if not self._exists():
            return []
        prefix = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        safe = prefix and not any(c in prefix for c in '%_"\\')
        expression = f'path like "{prefix}%"' if safe else ""
        ids = []
        iterator = self._call("query_iterator", self.collection, batch_size=1000, filter=expression,
                              output_fields=["path"])
        while batch := iterator.next():
            ids += [row["id"] for row in batch if fnmatch.fnmatchcase(row["path"], pattern)]
        iterator.close()
        return ids

    def _remove_ids(self, ids: list[int]) -> int:
        present = len(self._call("get", self.collection, ids=ids, output_fields=["id"]))
        self._call("delete", self.collection, ids=ids)
        return present

    # -- reading ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._client is None or not self._exists():
            return 0
        return int(self._call("query", self.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def items(self, ids: Sequence[int]) -> list[Item]:
        if not ids or not self._exists():
            return []
        found = {row["id"]: _item(row, row["id"]) for row in
                 self._call("get", self.collection, ids=[int(i) for i in ids], output_fields=_ITEM_FIELDS)}
        return [found[int(i)] for i in ids if int(i) in found]

    def _vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids or not self._exists():
            return {}
        rows = self._call("get", self.collection, ids=ids, output_fields=["vector"])
        return {row["id"]: np.asarray(row["vector"], np.float32) for row in rows}

    def _search(self, queries: np.ndarray, topk: int, where: SearchFilter) -> list[list[Hit]]:
        found = self._call("search", self.collection, data=list(queries), limit=topk, filter=filter_expression(where),
                           output_fields=_ITEM_FIELDS, search_params={"metric_type": "IP",
                                                                       "params": {"nprobe": self.setting("nprobe")}})
        return [[Hit(int(hit["id"]), float(hit["distance"]), _item(hit["entity"], hit["id"])) for hit in hits]
                for hits in found]
