"""What every Gallery backend must do, checked against exact brute force; each backend's test file subclasses
GalleryContract and says how to open a fresh gallery (`open_gallery(path, **options)`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import GalleryError
from reidkit.gallery import Gallery, Item

DIM = 16
FINGERPRINT = {"model": "top_db_net", "weights_sha256": "a" * 64, "input_size": [64, 32],
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "normalized": True, "feature_dim": DIM}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_items(count: int, seed: int = 0) -> tuple[np.ndarray, list[Item]]:
    """Clustered vectors (identities) and items: camera 0..3 with every 7th unknown, time = index, some tags."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count // 5 + 1, DIM))
    vectors = (centres[np.arange(count) // 5] + 0.5 * rng.normal(size=(count, DIM))).astype(np.float32)
    items = [Item(f"cam{i % 4}/p{i // 5:04d}_{i}.jpg", camera=None if i % 7 == 0 else i % 4,
                  timestamp=1000.0 + i, track=i // 5, tags={"n": i}, content_hash=f"hash{seed}_{i}", pid=i // 5)
             for i in range(count)]
    return vectors, items


def brute_force(vectors: np.ndarray, items: list[Item], queries: np.ndarray, topk: int, keep=lambda item: True):
    scores = unit(queries) @ unit(vectors).T
    allowed = np.array([keep(item) for item in items])
    scores[:, ~allowed] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :topk]
    return [[(items[j].content_hash, float(scores[q, j])) for j in row if allowed[j]] for q, row in enumerate(order)]


def found(hits) -> list[tuple[str, float]]:
    return [(hit.item.content_hash, hit.score) for hit in hits]


def assert_same(got, want) -> None:
    assert [h for h, _ in got] == [h for h, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


class GalleryContract:
    def open_gallery(self, path: Path, **options) -> Gallery:
        raise NotImplementedError

    @pytest.fixture
    def filled(self, tmp_path):
        vectors, items = make_items(300)
        gallery = self.open_gallery(tmp_path)
        gallery.set_fingerprint(FINGERPRINT)
        ids = gallery.add(vectors[:200], items[:200]) + gallery.add(vectors[200:], items[200:])
        yield gallery, vectors, items, ids
        gallery.close()

    def test_search_equals_brute_force_with_and_without_filters(self, filled):
        gallery, vectors, items, _ = filled
        queries = np.random.default_rng(1).normal(size=(4, DIM)).astype(np.float32)
        cases = [({}, lambda it: True),
                 ({"camera": 2}, lambda it: it.camera == 2),
                 ({"camera": [1, 3]}, lambda it: it.camera in (1, 3)),
                 ({"exclude_camera": 0}, lambda it: it.camera != 0),
                 ({"since": 1050.0, "until": 1120.0}, lambda it: 1050 <= it.timestamp <= 1120),
                 ({"camera": 1, "since": 1100.0}, lambda it: it.camera == 1 and it.timestamp >= 1100)]
        for filters, keep in cases:
            got = gallery.search(queries, 10, **filters)
            want = brute_force(vectors, items, queries, 10, keep)
            for g, w in zip(got, want):
                assert_same(found(g), w)
        single = gallery.search(queries[0], 5)
        assert_same(found(single), brute_force(vectors, items, queries[:1], 5)[0])
        hit = single[0]
        stored = items[[it.content_hash for it in items].index(hit.item.content_hash)]
        assert (hit.item.path, hit.item.camera, hit.item.timestamp, hit.item.track, hit.item.tags, hit.item.pid) == \
            (stored.path, stored.camera, stored.timestamp, stored.track, stored.tags, stored.pid)

    def test_filter_nobody_passes_gives_no_hits(self, filled):
        gallery, *_ = filled
        assert gallery.search(np.ones(DIM, np.float32), 5, camera=9) == []

    def test_same_content_hash_is_not_added_twice(self, filled):
        gallery, vectors, items, ids = filled
        again = gallery.add(vectors[:50], items[:50])
        assert again == ids[:50] and len(gallery) == 300
        assert gallery.known_hashes([items[3].content_hash, "unknown"]) == {items[3].content_hash}

    def test_vectors_get_and_reopen(self, filled, tmp_path):
        gallery, vectors, items, ids = filled
        np.testing.assert_allclose(gallery.vectors([ids[5], ids[2]]), unit(vectors[[5, 2]]), atol=1e-6)
        assert gallery.get(ids[7]).path == items[7].path
        gallery.close()
        reopened = self.open_gallery(tmp_path, must_exist=True)
        assert len(reopened) == 300 and reopened.fingerprint["model"] == "top_db_net" and reopened.dim == DIM
        assert_same(found(reopened.search(vectors[9], 3)), brute_force(vectors, items, vectors[9:10], 3)[0])
        reopened.close()

    def test_remove_by_glob_and_by_ids(self, filled):
        gallery, vectors, items, ids = filled
        assert gallery.remove("cam1/*") == 75
        assert gallery.remove([ids[0], ids[4]]) == 2 and len(gallery) == 223
        hits = gallery.search(vectors[:3], 50)
        assert all(not h.item.path.startswith("cam1/") and h.id not in (ids[0], ids[4]) for row in hits for h in row)
        removed = {items[0].content_hash, items[4].content_hash}
        want = brute_force(vectors, items, vectors[1:2], 50,
                           lambda it: not it.path.startswith("cam1/") and it.content_hash not in removed)
        assert_same(found(hits[1]), want[0])

    def test_another_models_fingerprint_is_refused_naming_both(self, filled):
        gallery, *_ = filled
        other = {**FINGERPRINT, "model": "bot", "weights_sha256": "b" * 64}
        with pytest.raises(GalleryError, match=r"model 'top_db_net' \(weights sha256 aaaaaaaaaaaa.*model 'bot' "
                                               r"\(weights sha256 bbbbbbbbbbbb"):
            gallery.set_fingerprint(other)
        gallery.set_fingerprint(dict(FINGERPRINT, input_size=(64, 32)))  # the same model (tuple vs list)

    def test_bad_queries_and_items_get_one_clear_error(self, filled, tmp_path):
        gallery, vectors, items, _ = filled
        for topk, size in ((0, 300), (301, 300), (2.5, 300)):
            with pytest.raises(GalleryError, match=rf"topk={topk!r}: expected an integer from 1 to the gallery size"):
                gallery.search(vectors[0], topk)
        with pytest.raises(GalleryError, match="the query has 8-d features; .* holds 16-d vectors"):
            gallery.search(np.ones(8, np.float32), 3)
        with pytest.raises(GalleryError, match="holds 16-d vectors; got 8-d"):
            gallery.add(np.ones((1, 8), np.float32), items[:1])
        with pytest.raises(GalleryError, match="got 2 vectors but 1 items"):
            gallery.add(vectors[:2], items[:1])
        with pytest.raises(GalleryError, match="contains NaN or inf"):
            gallery.search(np.full(DIM, np.nan, np.float32), 3)
        with pytest.raises(GalleryError, match="since .* is after until"):
            gallery.search(vectors[0], 3, since=10.0, until=5.0)
        empty = self.open_gallery(tmp_path / "empty")
        empty.set_fingerprint(FINGERPRINT)
        with pytest.raises(GalleryError, match="is empty; add images first"):
            empty.search(vectors[0], 3)
        empty.close()
        with pytest.raises(GalleryError, match="no gallery"):
            self.open_gallery(tmp_path / "missing", must_exist=True)
