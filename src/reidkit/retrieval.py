"""A FAISS-backed gallery index for `reidkit extract`-ed features: exact inner product, IVF or HNSW.

Re-ID features are compared by cosine similarity, so by default rows are L2-normalised on the way in (both
gallery and queries) and the index scores by inner product; `search` returns the highest scores first.

    index = GalleryIndex(dim=512, kind="ivf", nlist=1024, nprobe=32)
    index.add(gallery_feats, ids=gallery_indices)   # an untrained IVF index trains on this first batch
    scores, ids = index.search(query_feats, k=10)
    index.save("gallery.index"); index = GalleryIndex.load("gallery.index")

From a `reidkit extract` file (either layout: a folder's `features` + `paths`, or a dataset's `gallery_f` +
`gallery_name`), the names come along and are saved with the index:

    index = GalleryIndex.from_feature_file("gallery.npz")
    scores, ids = index.search(query_feats, k=10); index.names[ids]   # the image paths of the hits

Kinds: "flat" (exact; memory 4 * D bytes per item; search time linear in the gallery), "ivf" (inverted
lists: each query scans `nprobe` of `nlist` lists; needs training on a sample), "hnsw" (graph; no
training, fast queries, slow to build, ~ (4 * D + 8 * M) bytes per item).

IVF settings: nlist ~ 4 * sqrt(n) (the default) to 16 * sqrt(n), trained on 30-256 x nlist vectors (default
40 x nlist); raise nprobe until recall suffices. Measured on 1,000,000 x 512 synthetic galleries
(benchmarks/eval_speed.py, docs/results/eval_speed.md): nlist 4,096 needs nprobe 128 for recall@10 0.97 of
exact search on identity clusters without any other structure (the default nprobe 32 gives 0.92 there).
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator

import faiss
import numpy as np

from reidkit.errors import ReidkitError
from reidkit.features.files import read_feature_file
from reidkit.metrics._checks import MetricInputError, positive_int, to_numpy
from reidkit.utils.io import atomic_open

KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw")
_FORMAT = "reidkit-gallery-index"
EXACT_LIMIT = 100_000  # kind="auto": exact search below this many items, IVF from here on


def auto_kind(count: int, exact_limit: int = EXACT_LIMIT) -> str:
    """"flat" (exact) below `exact_limit` items, "ivf" from there on."""
    return "flat" if count < exact_limit else "ivf"


class GalleryIndex:
    """Gallery features in a FAISS index; ids are arbitrary int64 labels (default: insertion positions)."""

    def __init__(self, dim: int, kind: str = "flat", *, nlist: int | None = None, nprobe: int = 32,
                 hnsw_m: int = 32, ef_construction: int = 200, ef_search: int = 128, normalize: bool = True,
                 train_size: int | None = None, seed: int = 0) -> None:
        """nlist: IVF lists (default 4 * sqrt(n) of the training set); train_size: IVF training sample
        (default 40 * nlist rows, FAISS's lower bound for a stable k-means; the full set is slow to cluster)."""
        if kind not in KINDS:
            raise MetricInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.dim = positive_int("dim", dim)
        self.kind, self.normalize = kind, bool(normalize)
        self.nlist = None if nlist is None else positive_int("nlist", nlist)
        self.nprobe = positive_int("nprobe", nprobe)
        self.train_size = None if train_size is None else positive_int("train_size", train_size)
        self.seed = int(seed)
        self._ids = np.zeros(0, np.int64)
        self.names: np.ndarray | None = None  # one str per row (image paths), when the rows were given names
        self.info: dict[str, Any] = {}  # the owner's JSON-able notes, saved with the index (e.g. a data version)
        if kind == "flat":
            self._index = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(self.dim, positive_int("hnsw_m", hnsw_m), faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = positive_int("ef_construction", ef_construction)
            self._index.hnsw.efSearch = positive_int("ef_search", ef_search)
        else:
            self._index = None  # built by train(): nlist may depend on the training set size

    # -- building ---------------------------------------------------------------------------------------------
    def _prepare(self, name: str, x: Any) -> np.ndarray:
        src = to_numpy(name, x)
        if src.ndim != 2 or src.shape[1] != self.dim:
            raise MetricInputError(f"{name} has shape {src.shape}; expected [n, {self.dim}]")
        arr = np.ascontiguousarray(src, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise MetricInputError(f"{name} contains NaN or inf")
        if self.normalize:
            if np.shares_memory(arr, src):  # never normalise the caller's array (or tensor) in place
                arr = arr.copy()
            faiss.normalize_L2(arr)
        return arr

    @property
    def is_trained(self) -> bool:
        return self._index is not None and self._index.is_trained

    def train(self, features: Any) -> None:
        """IVF only (flat and HNSW need no training): k-means of a sample of `features` into nlist lists."""
        if self.kind != "ivf":
            return
        x = self._prepare("features", features)
        nlist = self.nlist or max(1, int(4 * np.sqrt(len(x))))
        if len(x) < nlist:
            raise MetricInputError(f"IVF training needs at least nlist={nlist} vectors, got {len(x)}; "
                                   "pass fewer lists (nlist=...) or more features")
        size = min(len(x), self.train_size or 40 * nlist)
        if size < len(x):
            x = x[np.sort(np.random.default_rng(self.seed).choice(len(x), size, replace=False))]
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        index.train(x)
        index.nprobe = min(self.nprobe, nlist)
        self._quantizer, self._index, self.nlist = quantizer, index, nlist  # the IVF index does not own it

    def add(self, features: Any, ids: Any = None, names: Any = None) -> None:
        """Add [n, dim] features; ids: [n] int64 labels returned by search (default: running positions);
        names: [n] strings kept in `self.names` (row order), all rows or none."""
        x = self._prepare("features", features)
        new_names = self._check_names(names, len(x))
        if ids is None:
            new_ids = np.arange(len(self), len(self) + len(x), dtype=np.int64)
        else:
            new_ids = to_numpy("ids", ids)
            if new_ids.shape != (len(x),) or not np.issubdtype(new_ids.dtype, np.integer):
                raise MetricInputError(f"ids has shape {new_ids.shape} and dtype {new_ids.dtype}; "
                                       f"expected ({len(x)},) integers, one per feature row")
            new_ids = new_ids.astype(np.int64)
        if not self.is_trained:
            self.train(x)
        self._index.add(x)
        self._ids = np.concatenate([self._ids, new_ids])
        if new_names is not None:
            self.names = new_names if self.names is None else np.concatenate([self.names, new_names])

    def _check_names(self, names: Any, count: int) -> np.ndarray | None:
        if names is None:
            if self.names is not None:
                raise MetricInputError("this index has names for its rows; pass names=[...] for the new rows too")
            return None
        arr = np.asarray([str(n) for n in names])
        if arr.shape != (count,):
            raise MetricInputError(f"names has {len(arr)} entries; expected {count}, one per feature row")
        if len(self) and self.names is None:
            raise MetricInputError("the rows already in this index have no names; names must be given for all rows")
        return arr

    # -- querying ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """The id of every row, in row (insertion) order; read-only."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def search(self, queries: Any, k: int = 10, *, mask: Any = None,
               threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [n, k], ids int64 [n, k]), best first; fewer than k hits are padded with id -1.
        mask: optional bool [len(self)] in row order; only rows where it is true are searched (a FAISS ID
        selector inside the search, so IVF still returns up to k hits from the allowed rows it probes).
        threads: FAISS's OpenMP threads for this call (default: FAISS's setting). One thread suits a single
        query: measured on 2 busy cores, 20,000 x 512 flat, p50 1.5 ms on one thread vs 32 ms on two."""
        k = positive_int("k", k)
        if len(self) == 0:
            raise MetricInputError("the index is empty; add gallery features before searching")
        q = self._prepare("queries", queries)
        with _omp_threads(threads):
            if mask is None:
                scores, positions = self._index.search(q, k)
            else:
                scores, positions = self._search_masked(q, k, mask)
        ids = np.where(positions >= 0, self._ids[np.clip(positions, 0, None)], -1)
        return scores, ids

    def _search_masked(self, q: np.ndarray, k: int, mask: Any) -> tuple[np.ndarray, np.ndarray]:
        allowed = to_numpy("mask", mask)
        if allowed.shape != (len(self),) or allowed.dtype != np.bool_:
            raise MetricInputError(f"mask has shape {allowed.shape} and dtype {allowed.dtype}; "
                                   f"expected ({len(self)},) bool, one flag per row")
        bitmap = np.packbits(allowed, bitorder="little")  # bit i of byte i // 8: FAISS's bitmap layout
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nprobe)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self._index.hnsw.efSearch)
        else:
            params = faiss.SearchParameters(sel=selector)
        return self._index.search(q, k, params=params)  # `bitmap` stays alive until here: the selector points into it

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Accuracy / speed trade-off of approximate kinds: IVF `nprobe`, HNSW `ef_search`."""
        if nprobe is not None:
            self.nprobe = positive_int("nprobe", nprobe)
            if self.kind == "ivf" and self._index is not None:
                self._index.nprobe = min(self.nprobe, self._index.nlist)
        if ef_search is not None and self.kind == "hnsw":
            self._index.hnsw.efSearch = positive_int("ef_search", ef_search)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """One file (npz): the serialised FAISS index, the ids and the settings; written atomically."""
        if self._index is None:
            raise MetricInputError("cannot save an IVF index that has not been trained")
        meta = {"format": _FORMAT, "version": 1, "dim": self.dim, "kind": self.kind, "normalize": self.normalize,
                "nlist": self.nlist, "nprobe": self.nprobe, "train_size": self.train_size, "seed": self.seed,
                "info": self.info}
        with atomic_open(path, "wb") as handle:
            extra = {} if self.names is None else {"names": self.names}
            np.savez(handle, index=faiss.serialize_index(self._index), ids=self._ids,
                     meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GalleryIndex":
        """An index written by `save`. A damaged or edited file (its settings, ids, names or FAISS bytes
        disagreeing with each other) is a ReidkitError naming it; nothing in it is unpickled."""
        def refuse(problem: str) -> ReidkitError:
            return ReidkitError(f"{str(path)!r} is not a reidkit gallery index, or a damaged one: {problem}")

        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                raw, ids = data["index"], data["ids"]
                names = data["names"] if "names" in data else None
        except Exception as exc:  # noqa: BLE001  (zip, npz, JSON and key errors of a damaged file)
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "pickle" in detail:  # np.load's answer to bytes that are no npz archive
                detail = "not an npz archive (and never unpickled)"
            raise refuse(detail) from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise refuse(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}, expected {_FORMAT!r}")
        settings = ("dim", "kind", "nlist", "nprobe", "normalize", "train_size", "seed")
        missing = [k for k in settings if k not in meta]
        if missing:
            raise refuse(f"its settings lack {', '.join(missing)}")
        try:
            obj = cls(meta["dim"], meta["kind"], nlist=meta["nlist"], nprobe=meta["nprobe"],
                      normalize=bool(meta["normalize"]), train_size=meta["train_size"], seed=meta["seed"])
        except (TypeError, ValueError) as exc:  # MetricInputError is a ValueError
            raise refuse(f"bad settings ({exc})") from None
        obj._index = _deserialize_checked(raw, obj, refuse)
        if ids.ndim != 1 or len(ids) != obj._index.ntotal or not np.issubdtype(ids.dtype, np.integer):
            raise refuse(f"{obj._index.ntotal} indexed vectors but ids of shape {ids.shape} and dtype {ids.dtype}")
        if names is not None and (names.ndim != 1 or len(names) != len(ids)):
            raise refuse(f"{len(ids)} ids but names of shape {names.shape}")
        obj._ids = ids.astype(np.int64)
        obj.names = names
        obj.info = dict(meta.get("info") or {})
        return obj

    @classmethod
    def from_features(cls, features: Any, kind: str = "auto", ids: Any = None, names: Any = None,
                      **options: Any) -> "GalleryIndex":
        """Index an [n, D] feature matrix (names: optional [n] strings). kind="auto": exact below 100,000
        items, IVF above."""
        arr = to_numpy("features", features)
        if arr.ndim != 2:
            raise MetricInputError(f"features must be [n, dim], got shape {arr.shape}")
        if kind == "auto":
            kind = auto_kind(len(arr))
        index = cls(arr.shape[1], kind, **options)
        index.add(arr, ids=ids, names=names)
        return index

    @classmethod
    def from_feature_file(cls, path: str | os.PathLike, kind: str = "auto", key: str | None = None,
                          **options: Any) -> "GalleryIndex":
        """Index the features of a `reidkit extract` file, with its image names in `names`; see
        `read_feature_file` for the layouts and `key`. ids are the row positions in the file."""
        features, names = read_feature_file(path, key)
        return cls.from_features(features, kind, names=names, **options)


_FAISS_TYPES = {"flat": faiss.IndexFlatIP, "ivf": faiss.IndexIVFFlat, "hnsw": faiss.IndexHNSWFlat}


@contextlib.contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    """FAISS's (process-wide) OpenMP thread count for the duration of a call."""
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(positive_int("threads", threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _deserialize_checked(raw: np.ndarray, settings: GalleryIndex, refuse: Any) -> Any:
    """The FAISS index in `raw` (bytes), checked against the settings saved beside it: its class, dimension and
    metric. FAISS reads what the bytes say; a file edited by hand can still exhaust memory while being read."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise refuse(f"the FAISS bytes are an array of {raw.dtype} {raw.shape}, expected uint8 bytes")
    try:
        index = faiss.deserialize_index(raw)
    except (RuntimeError, MemoryError) as exc:
        raise refuse(f"FAISS cannot read it ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None
    expected = _FAISS_TYPES[settings.kind]  # deserialize_index returns the concrete class
    if type(index) is not expected or index.d != settings.dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise refuse(f"it holds a {type(index).__name__} of dimension {index.d}, its settings say a "
                     f"{settings.kind} index ({expected.__name__}, inner product) of dimension {settings.dim}")
    return index
