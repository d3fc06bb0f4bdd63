"""The Milvus backend for real, through Milvus Lite (a local folder served by an in-process gRPC server that
pymilvus starts): the shared contract, filter expressions, and the server ended by `close()`."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from gallery_contract import DIM, FINGERPRINT, GalleryContract, make_items
from reidkit.errors import GalleryError
from reidkit.gallery import Gallery, SearchFilter
from reidkit.gallery.milvus import MilvusGallery, filter_expression, hash_id


def lite_servers() -> dict:
    from milvus_lite.server_manager import server_manager_instance

    return dict(server_manager_instance._servers)


@pytest.fixture(autouse=True)
def every_server_ended():
    """No test leaves a Milvus Lite server (or its threads) running."""
    before = set(threading.enumerate())

    def started() -> list[str]:  # tqdm's monitor thread (progress bars) is not a server's
        return [t.name for t in set(threading.enumerate()) - before if t.name != "tqdm_monitor"]

    yield
    assert lite_servers() == {}
    deadline = time.monotonic() + 10
    while started() and time.monotonic() < deadline:
        time.sleep(0.05)  # a stopped gRPC server's worker threads finish their last poll
    assert started() == []


class TestMilvusLiteContract(GalleryContract):
    def open_gallery(self, path, **options):
        return Gallery(str(path / "gallery.db"), **options)


def test_close_ends_the_lite_server(tmp_path):
    gallery = Gallery(str(tmp_path / "g.db"))
    assert isinstance(gallery, MilvusGallery) and gallery.single_writer
    (_, _, port), = lite_servers().values()
    vectors, items = make_items(20)
    gallery.set_fingerprint(FINGERPRINT)
    gallery.add(vectors, items)
    assert len(gallery) == 20
    gallery.close()
    assert lite_servers() == {}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_filter_expressions():
    assert filter_expression(SearchFilter()) == ""
    assert filter_expression(SearchFilter(cameras=(1, 2), excluded=(3,), since=5.0, until=9.5)) == (
        "camera in [1, 2] and (camera is null or camera not in [3]) and timestamp >= 5.0 and timestamp <= 9.5")


def test_ids_come_from_content_hashes_and_readd_is_idempotent(tmp_path):
    vectors, items = make_items(30)
    with Gallery(str(tmp_path / "g.db")) as gallery:
        gallery.set_fingerprint(FINGERPRINT)
        ids = gallery.add(vectors, items)
        assert ids == [hash_id(it.content_hash) for it in items] and all(0 < i < 2 ** 63 for i in ids)
        assert gallery.add(vectors[:10], items[:10]) == ids[:10] and len(gallery) == 30


def test_build_index_switches_to_ivf_above_the_exact_limit(tmp_path):
    vectors, items = make_items(200)
    with Gallery(str(tmp_path / "g.db"), exact_limit=100, nlist=4, nprobe=4) as gallery:
        gallery.set_fingerprint(FINGERPRINT)
        gallery.add(vectors, items)
        gallery.build_index()
        assert gallery._call("describe_index", gallery.collection, "vector")["index_type"] == "IVF_FLAT"
        hit = gallery.search(vectors[17], 1)[0]
        assert hit.item.content_hash == items[17].content_hash and hit.score == pytest.approx(1.0, abs=1e-5)


def test_not_a_gallery(tmp_path):
    (tmp_path / "file.db").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(GalleryError, match="file.db is a file; a Milvus Lite database is a folder"):
        Gallery(str(tmp_path / "file.db"))
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "other.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("reidkit_gallery", schema=schema)
    client.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(tmp_path / "other.db"))
    with pytest.raises(GalleryError, match="collection 'reidkit_gallery' at .* is not a reidkit gallery"):
        Gallery(str(tmp_path / "other.db"))


def test_index_and_search_commands_on_milvus_lite_match_sqlite(tmp_path, capsys, checkpoint, crops):
    from reidkit.cli import main

    tables = {}
    for db in (tmp_path / "g.db", tmp_path / "g"):
        assert main(["index", "--weights", str(checkpoint(0)), "--images", str(crops), "--db", str(db),
                     "--pattern", "market1501", "--no-progress", "--device", "cpu"]) == 0
        assert "indexed 40 new images" in capsys.readouterr().out
        query = next(crops.rglob("0002_c3s1_*.jpg"))
        assert main(["search", "--db", str(db), "--query", str(query), "--topk", "8", "--camera", "1",
                     "--output", str(tmp_path / "r.jpg")]) == 0
        tables[db.suffix] = [line.split()[-1] for line in capsys.readouterr().out.splitlines()
                             if line.strip()[:1].isdigit()]
    assert tables[".db"] == tables[""] and len(tables[""]) == 8 and all("_c1s" in p for p in tables[""])
    assert main(["index", "--db", str(tmp_path / "g.db"), "--remove", "day0/*"]) == 0
    assert "removed 20 items" in capsys.readouterr().out


def test_indexing_path_of_a_server_each_process_inserts_its_own(tmp_path, checkpoint, crops):
    """What every torchrun process does against a Milvus server (check its hashes, insert its batch), run in
    one process on Milvus Lite marked as a many-writer database."""
    from reidkit.deploy.embedder import Embedder
    from reidkit.gallery.indexing import index_images
    from reidkit.gallery.metadata import NamePattern

    embedder = Embedder.load(checkpoint(0))
    with Gallery(str(tmp_path / "g.db")) as gallery:
        gallery.single_writer = False
        summary = index_images(gallery, embedder, crops, metadata=NamePattern("market1501"), batch_size=16)
        assert summary.added == 40 and summary.gallery_size == 40 and len(gallery) == 40
        again = index_images(gallery, embedder, crops, batch_size=16)
        assert again.added == 0 and again.already == 40
        query = embedder.embed([next(crops.rglob("*.jpg"))])[0]
        assert sorted({hit.item.camera for hit in gallery.search(query, 40)}) == [1, 2, 3]
