"""The default gallery: a folder holding an SQLite database (the durable truth) and a FAISS index (a cache).

    gallery/gallery.sqlite3   items (path, camera, timestamp, track, pid, tags, content hash, float32 vector blob)
                              and meta (format, dim, fingerprint, root, generation counters); WAL journal,
                              one transaction per `add` / `remove`, synchronous=FULL: a committed batch survives
                              a crash or power loss, an interrupted one leaves no trace
    gallery/faiss_index.npz   `reidkit.retrieval.GalleryIndex` over the vectors, tagged with the generation it
                              was built at; rebuilt from SQLite when missing, unreadable or stale (after new
                              items it is extended, after removals rebuilt), so deleting it loses nothing

Every write bumps `generation`; removals also bump `removals`. Exact search (flat) below `exact_limit`
items, IVF above (nlist 4 sqrt(n), retrained once the gallery has grown 4x). Filters are a row mask handed to
FAISS as an ID selector, made from the camera / timestamp columns read from SQLite at the index's generation.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from reidkit.errors import GalleryError
from reidkit.gallery.base import BACKENDS, URI_HELP, Gallery, Hit, Item, SearchFilter
from reidkit.retrieval import GalleryIndex, auto_kind

log = logging.getLogger(__name__)

DB_NAME = "gallery.sqlite3"
INDEX_NAME = "faiss_index.npz"
FORMAT = "reidkit-gallery"
VERSION = 1
# A row holds a 2 KB vector (512 floats): 4 KB pages (SQLite's default) fit one row each, half empty; 16 KB
# pages fit seven (measured: 2.5 KB a row in all; a 1M x 512 gallery had passed 4.2 GB with 4 KB pages).
_PAGE_SIZE = 16384
_CHUNK = 900  # bound parameters per IN (...) query, under SQLite's oldest limit of 999
_RETRAIN_GROWTH = 4  # an IVF index is retrained once the gallery holds 4x the items it was trained on
# Up to this many queries are searched on one FAISS thread: OpenMP start-up and spinning on a busy machine
# cost more than a single query's scan (retrieval.GalleryIndex.search).
_FEW_QUERIES = 4
_ITEM_COLUMNS = "id, path, camera, timestamp, track, pid, tags, content_hash"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL, camera INTEGER, timestamp REAL, track INTEGER, pid INTEGER,
    tags TEXT NOT NULL DEFAULT '{}', content_hash TEXT NOT NULL UNIQUE, vector BLOB NOT NULL);
CREATE INDEX items_camera ON items(camera);
CREATE INDEX items_timestamp ON items(timestamp);
CREATE INDEX items_path ON items(path);
"""


@dataclass(frozen=True)
class _State:
    generation: int
    removals: int
    count: int
    max_id: int


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _item(row: tuple) -> Item:
    item_id, path, camera, timestamp, track, pid, tags, content_hash = row
    return Item(path, camera, timestamp, track, json.loads(tags), content_hash, pid, item_id)


@BACKENDS.register("folder")
class SQLiteGallery(Gallery):
    """SQLite + FAISS in a folder; options: must_exist, exact_limit, nlist, nprobe (see the module doc)."""

    def __init__(self, uri: str | os.PathLike, *, token: str | None = None, must_exist: bool = False,
                 exact_limit: int | None = None, nlist: int | None = None, nprobe: int | None = None) -> None:
        super().__init__(uri)
        self.folder = Path(self.uri).expanduser()
        self.db_path, self.index_path = self.folder / DB_NAME, self.folder / INDEX_NAME
        self._configure(exact_limit=exact_limit, nlist=nlist, nprobe=nprobe)
        self._con: sqlite3.Connection | None = None
        self._index: GalleryIndex | None = None
        self._columns: tuple[int, np.ndarray, np.ndarray] | None = None  # (generation, camera, timestamp) by row
        if self.folder.is_file():
            raise GalleryError(f"--db {self.folder} is a file; expected {URI_HELP}")
        if self.db_path.exists():
            self._connect()
        elif must_exist:
            raise GalleryError(f"no gallery at {self.folder} (no {DB_NAME}); build one with "
                               f"reidkit index --db {self.folder} --weights ... --images ...")

    # -- connection -------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._con is not None:
            return self._con
        creating = not self.db_path.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            if creating:  # before anything is written: the page size is fixed once the file has content
                con.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            if creating:
                with _transaction(con):
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        con.execute(statement)
                    con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in
                                    (("format", FORMAT), ("version", VERSION), ("generation", 0), ("removals", 0),
                                     ("count", 0))])
            found = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            con.close()
            raise GalleryError(f"{self.db_path} is not a reidkit gallery ({exc})") from None
        if found is None or json.loads(found[0]) != FORMAT:
            con.close()
            raise GalleryError(f"{self.db_path} is not a reidkit gallery (its meta table has no format {FORMAT!r})")
        self._con = con
        return con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _read_meta(self, key: str) -> Any:
        if self._con is None:
            return None
        found = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else json.loads(found[0])

    def _write_meta(self, key: str, value: Any) -> None:
        con = self._connect()
        with _transaction(con):
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def _record_change(self, con: sqlite3.Connection, delta: int) -> None:
        """Inside a write: one more generation, the item count moved by `delta` (< 0: a removal, also counted).
        The count is kept in meta because COUNT(*) scans the table (milliseconds a query at 1M items)."""
        increments = [("generation", 1), ("count", delta)] + ([("removals", 1)] if delta < 0 else [])
        con.executemany("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?",
                        [(step, key) for key, step in increments])

    def _state(self, con: sqlite3.Connection) -> _State:
        meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'removals', 'count')"))
        max_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]  # the rowid b-tree's end
        return _State(int(meta["generation"]), int(meta["removals"]), int(meta["count"]), int(max_id))

    # -- writing ----------------------------------------------------------------------------------------------
    def _add(self, vectors: np.ndarray, items: list[Item]) -> list[int]:
        rows = [(it.path, it.camera, it.timestamp, it.track, it.pid, json.dumps(it.tags, sort_keys=True),
                 it.content_hash, vector.tobytes()) for it, vector in zip(items, vectors)]
        con = self._connect()
        with _transaction(con):
            before = con.total_changes
            con.executemany("INSERT INTO items (path, camera, timestamp, track, pid, tags, content_hash, vector) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(content_hash) DO NOTHING", rows)
            if con.total_changes != before:
                self._record_change(con, con.total_changes - before)
            ids = self._ids_of_hashes(con, [it.content_hash for it in items])
        return [ids[it.content_hash] for it in items]

    def _ids_of_hashes(self, con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in _chunks(hashes):
            found.update((h, i) for i, h in con.execute(
                f"SELECT id, content_hash FROM items WHERE content_hash IN ({_marks(part)})", part))
        return found

    def known_hashes(self, hashes: Sequence[str]) -> set[str]:
        return set() if self._con is None else set(self._ids_of_hashes(self._con, list(hashes)))

    def _ids_matching(self, pattern: str) -> list[int]:
        if self._con is None:
            return []
        return [i for (i,) in self._con.execute("SELECT id FROM items WHERE path GLOB ?", (pattern,))]

    def _remove_ids(self, ids: list[int]) -> int:
        con = self._connect()
        with _transaction(con):
            before = con.total_changes
            for part in _chunks(ids):
                con.execute(f"DELETE FROM items WHERE id IN ({_marks(part)})", part)
            removed = con.total_changes - before
            if removed:
                self._record_change(con, -removed)
        return removed

    # -- reading ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return 0 if self._con is None else int(self._read_meta("count"))

    def items(self, ids: Sequence[int]) -> list[Item]:
        if self._con is None:
            return []
        ids = [int(i) for i in ids]
        found: dict[int, Item] = {}
        for part in _chunks(ids):
            found.update((row[0], _item(row)) for row in self._con.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN ({_marks(part)})", part))
        return [found[i] for i in ids if i in found]

    def _vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        if self._con is None:
            return found
        for part in _chunks(ids):
            found.update((i, np.frombuffer(blob, np.float32)) for i, blob in self._con.execute(
                f"SELECT id, vector FROM items WHERE id IN ({_marks(part)})", part))
        return found

    def _search_params_changed(self) -> None:
        if self._index is not None:
            self._index.set_search_params(nprobe=self.setting("nprobe"))

    def _search(self, queries: np.ndarray, topk: int, where: SearchFilter) -> list[list[Hit]]:
        index = self._fresh_index()
        mask = self._mask(index, where) if where.active else None
        if mask is not None and not mask.any():
            return [[] for _ in queries]
        threads = 1 if len(queries) <= _FEW_QUERIES else None
        scores, ids = index.search(queries, topk, mask=mask, threads=threads)
        items = {item.id: item for item in self.items(np.unique(ids[ids >= 0]).tolist())}
        return [[Hit(int(i), float(s), items[int(i)]) for s, i in zip(row_s, row_i) if int(i) in items]
                for row_s, row_i in zip(scores, ids)]

    # -- the FAISS index --------------------------------------------------------------------------------------
    def build_index(self) -> None:
        if self._con is not None:
            self._store_settings()
            if len(self):
                self._fresh_index()

    def _fresh_index(self) -> GalleryIndex:
        """The index at the database's current generation: kept, loaded from its file, extended or rebuilt."""
        con = self._connect()
        with _read_snapshot(con):
            state = self._state(con)
            index = self._index if self._index is not None else self._load_index_file()
            if index is not None and index.info.get("generation") == state.generation:
                self._index = index
                return index
            if index is not None and self._extendable(index, state):
                self._append_rows(con, index, index.info["max_id"])
            else:
                index = self._build(con, state)
            index.info.update(generation=state.generation, removals=state.removals, max_id=state.max_id)
        self._index, self._columns = index, None
        self._save_index(index)
        return index

    def _extendable(self, index: GalleryIndex, state: _State) -> bool:
        if index.info.get("removals") != state.removals or index.dim != self.dim:
            return False
        if index.kind == "flat":
            return auto_kind(state.count, self.setting("exact_limit")) == "flat"
        return index.kind == "ivf" and state.count <= _RETRAIN_GROWTH * int(index.info.get("trained_on", 0))

    def _build(self, con: sqlite3.Connection, state: _State) -> GalleryIndex:
        kind = auto_kind(state.count, self.setting("exact_limit"))
        # normalize=False: stored vectors and queries are unit rows already (Gallery._check_vectors)
        index = GalleryIndex(int(self.dim), kind, nlist=self.setting("nlist"), nprobe=self.setting("nprobe"),
                             normalize=False)
        ids, vectors = self._read_rows(con, 0, state.count)
        index.add(vectors, ids=ids)
        index.info["trained_on"] = int(state.count)
        log.info("gallery %s: built a %s index over %d items", self.folder, kind, len(index))
        return index

    def _append_rows(self, con: sqlite3.Connection, index: GalleryIndex, after_id: int) -> None:
        count = con.execute("SELECT COUNT(*) FROM items WHERE id > ?", (after_id,)).fetchone()[0]
        if count:
            ids, vectors = self._read_rows(con, after_id, count)
            index.add(vectors, ids=ids)

    def _read_rows(self, con: sqlite3.Connection, after_id: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the items with id > after_id, in id order, read in blocks into preallocated arrays."""
        dim = int(self.dim)
        ids, vectors = np.empty(count, np.int64), np.empty((count, dim), np.float32)
        cursor = con.execute("SELECT id, vector FROM items WHERE id > ? ORDER BY id", (after_id,))
        filled = 0
        while rows := cursor.fetchmany(10_000):
            stop = filled + len(rows)
            ids[filled:stop] = [r[0] for r in rows]
            vectors[filled:stop] = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(-1, dim)
            filled = stop
        return ids[:filled], vectors[:filled]

    def _load_index_file(self) -> GalleryIndex | None:
        if not self.index_path.is_file():
            return None
        try:
            index = GalleryIndex.load(self.index_path)
        except Exception as exc:  # a damaged cache is rebuilt from SQLite, never trusted
            log.warning("gallery %s: ignoring unreadable %s (%s); rebuilding it", self.folder, INDEX_NAME, exc)
            return None
        index.set_search_params(nprobe=self.setting("nprobe"))
        return index

    def _save_index(self, index: GalleryIndex) -> None:
        try:
            index.save(self.index_path)
        except OSError as exc:  # a read-only folder: search from memory, rebuild next time
            log.warning("gallery %s: cannot write %s (%s); the index lives in memory only", self.folder,
                        INDEX_NAME, exc)

    def _mask(self, index: GalleryIndex, where: SearchFilter) -> np.ndarray:
        generation = index.info["generation"]
        if self._columns is None or self._columns[0] != generation:
            self._columns = (generation, *self._read_columns(index.ids))
        _, camera, timestamp = self._columns
        mask = np.ones(len(camera), bool)
        if where.cameras is not None:
            mask &= np.isin(camera, where.cameras)
        if where.excluded:
            mask &= ~np.isin(camera, where.excluded)  # NaN (no camera) is in no list: kept
        if where.since is not None:
            mask &= timestamp >= where.since  # NaN (no time) compares false: dropped
        if where.until is not None:
            mask &= timestamp <= where.until
        return mask

    def _read_columns(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """camera and timestamp of every index row (NaN where unknown), in row order."""
        con = self._connect()
        rows = con.execute("SELECT id, camera, timestamp FROM items ORDER BY id").fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 3)
        camera, timestamp = np.full(len(row_ids), np.nan), np.full(len(row_ids), np.nan)
        order = np.argsort(row_ids, kind="stable")
        where = np.searchsorted(row_ids, table[:, 0], sorter=order).clip(0, max(len(row_ids) - 1, 0))
        rows_at = order[where]
        present = row_ids[rows_at] == table[:, 0]  # rows added after the index was built are not in it
        camera[rows_at[present]], timestamp[rows_at[present]] = table[present, 1], table[present, 2]
        return camera, timestamp


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock up front (no deadlock between two writers)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextlib.contextmanager
def _read_snapshot(con: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every SELECT inside sees the same committed state (WAL snapshot)."""
    con.execute("BEGIN")
    try:
        yield
    finally:
        con.execute("COMMIT")
