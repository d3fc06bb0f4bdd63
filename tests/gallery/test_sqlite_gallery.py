"""The default gallery, SQLite + FAISS in a temporary folder: the shared contract (exact brute force, filters,
dedup, fingerprints, bad input) plus its own index file: exact / IVF by size, rebuilt when missing, stale or
damaged, never trusted over SQLite."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from gallery_contract import DIM, FINGERPRINT, GalleryContract, assert_same, brute_force, found, make_items
from reidkit.errors import GalleryError
from reidkit.gallery import Gallery
from reidkit.gallery.sqlite_faiss import DB_NAME, INDEX_NAME, SQLiteGallery
from reidkit.retrieval import GalleryIndex


class TestSQLiteContract(GalleryContract):
    def open_gallery(self, path, **options):
        return Gallery(path / "gallery", **options)


def _filled(folder, count=300, **options):
    vectors, items = make_items(count)
    gallery = Gallery(folder, **options)
    gallery.set_fingerprint(FINGERPRINT)
    gallery.add(vectors, items)
    return gallery, vectors, items


def test_folder_uri_opens_sqlite_and_builds_the_index_file(tmp_path):
    gallery, vectors, items = _filled(tmp_path / "g")
    assert isinstance(gallery, SQLiteGallery) and not (tmp_path / "g" / INDEX_NAME).exists()
    gallery.build_index()
    saved = GalleryIndex.load(tmp_path / "g" / INDEX_NAME)
    assert saved.kind == "flat" and len(saved) == 300 and saved.info["generation"] == 1
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 300 == len(gallery)


def test_ivf_above_the_exact_limit_and_nprobe_settable(tmp_path):
    gallery, vectors, items = _filled(tmp_path / "g", 400, exact_limit=100, nlist=8, nprobe=8)
    queries = vectors[:5] + 0.1
    got = gallery.search(queries, 10)
    assert gallery._index.kind == "ivf" and gallery._index.nlist == 8
    for g, w in zip(got, brute_force(vectors, items, queries, 10)):  # all 8 lists probed: exact
        assert_same(found(g), w)
    gallery.set_search_params(nprobe=1)
    assert gallery._index._index.nprobe == 1
    with pytest.raises(GalleryError, match="nprobe=0: expected an integer >= 1"):
        gallery.set_search_params(nprobe=0)


def test_stale_index_is_extended_after_adds_and_rebuilt_after_removals(tmp_path):
    gallery, vectors, items = _filled(tmp_path / "g")
    gallery.build_index()
    more, more_items = make_items(50, seed=1)
    gallery.add(more, more_items)
    other = Gallery(tmp_path / "g")  # another process: its index file is stale now
    hits = other.search(more[3], 1)
    assert hits[0].item.content_hash == more_items[3].content_hash
    assert other._index.info["generation"] == 2 and len(other._index) == 350
    assert other.remove("cam2/*") == 75 + 12
    assert len(other.search(more[3], 263)) == 263 and other._index.info["removals"] == 1
    reloaded = GalleryIndex.load(tmp_path / "g" / INDEX_NAME)
    assert len(reloaded) == 263 and reloaded.info["generation"] == 3


def test_missing_or_damaged_index_file_is_rebuilt_from_sqlite(tmp_path, caplog):
    gallery, vectors, items = _filled(tmp_path / "g")
    gallery.build_index()
    gallery.close()
    (tmp_path / "g" / INDEX_NAME).write_bytes(b"not an index")
    again = Gallery(tmp_path / "g")
    assert_same(found(again.search(vectors[4], 5)), brute_force(vectors, items, vectors[4:5], 5)[0])
    assert "ignoring unreadable" in caplog.text
    (tmp_path / "g" / INDEX_NAME).unlink()
    third = Gallery(tmp_path / "g")
    assert_same(found(third.search(vectors[4], 5)), brute_force(vectors, items, vectors[4:5], 5)[0])


def test_files_that_are_not_galleries_get_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GalleryError, match="notes.txt is a file; expected a gallery folder"):
        Gallery(tmp_path / "notes.txt")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"\x00" * 4096)
    with pytest.raises(GalleryError, match=f"{DB_NAME} is not a reidkit gallery"):
        Gallery(tmp_path / "junk")
    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / DB_NAME) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    with pytest.raises(GalleryError, match="is not a reidkit gallery \\(its meta table has no format"):
        Gallery(tmp_path / "other")


def test_a_failed_add_leaves_nothing_behind(tmp_path, monkeypatch):
    gallery, vectors, items = _filled(tmp_path / "g", 20)
    more, more_items = make_items(10, seed=3)

    def fail_after_insert(self, con, delta):
        raise RuntimeError("power cut")

    monkeypatch.setattr(SQLiteGallery, "_record_change", fail_after_insert)
    with pytest.raises(RuntimeError):
        gallery.add(more, more_items)
    monkeypatch.undo()
    assert len(gallery) == 20 and gallery.known_hashes([it.content_hash for it in more_items]) == set()
    assert len(gallery.add(more, more_items)) == 10 and len(gallery) == 30


def test_unit_vectors_stored_and_api_items_get_a_hash(tmp_path):
    from reidkit.gallery import Item

    gallery = Gallery(tmp_path / "g")
    ids = gallery.add(np.array([[3.0, 4.0] + [0.0] * (DIM - 2)], np.float32), [Item("a.jpg")])
    np.testing.assert_allclose(gallery.vectors(ids)[0][:2], [0.6, 0.8], atol=1e-7)
    assert len(gallery.get(ids[0]).content_hash) == 64
    with pytest.raises(GalleryError, match="item 0: 'a.jpg'; expected an Item"):
        gallery.add(np.ones((1, DIM), np.float32), ["a.jpg"])
    with pytest.raises(GalleryError, match=r"item 0 \(a.jpg\): camera='3'; expected an integer or None"):
        gallery.add(np.ones((1, DIM), np.float32), [Item("a.jpg", camera="3")])


def test_index_settings_given_once_stay_with_the_gallery(tmp_path):
    gallery, vectors, items = _filled(tmp_path / "g", 300, exact_limit=100, nlist=8, nprobe=8)
    gallery.build_index()
    gallery.close()
    again = Gallery(tmp_path / "g")
    assert (again.setting("exact_limit"), again.setting("nlist"), again.setting("nprobe")) == (100, 8, 8)
    again.remove([1])  # a removal forces a rebuild: with the stored settings, not the defaults
    again.search(vectors[5], 3)
    assert again._index.kind == "ivf" and again._index.nlist == 8 and again._index._index.nprobe == 8
    assert Gallery(tmp_path / "g", nprobe=2).setting("nprobe") == 2  # this handle only
    assert Gallery(tmp_path / "g").setting("nprobe") == 8
    with pytest.raises(GalleryError, match="exact_limit=0: expected an integer >= 1"):
        Gallery(tmp_path / "g", exact_limit=0)
