"""The JSON API of `reidkit serve` against live servers on 127.0.0.1 (httpx): search by upload and by item,
filters, items and their images, adding and deleting, and the error answers."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serve_helpers import T0, LiveServer, make_app


def _crop_bytes(indexed, name_part: str = "") -> tuple[Path, bytes]:
    path = sorted(p for p in indexed[1].rglob("*.jpg") if name_part in p.name)[0]
    return path, path.read_bytes()


def test_health_names_the_model_and_gallery_size(server):
    health = httpx.get(f"{server}/api/health").json()
    assert health["status"] == "ok" and health["model"] == "top_db_net"
    assert health["gallery_size"] == 40 and health["feature_dim"] == 40 and health["input_size"] == [64, 32]
    assert health["threshold"] is None and health["can_add"] is False


def test_search_by_item_ranks_others_and_leaves_the_query_out(server):
    result = httpx.post(f"{server}/api/search", data={"item_id": 5, "topk": 10}).json()
    hits = result["hits"]
    assert result["query"]["id"] == 5 and result["gallery_size"] == 40
    assert len(hits) == 10 and 5 not in [h["id"] for h in hits]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert set(hits[0]) >= {"id", "score", "camera", "time", "track", "path", "image", "same_person"}


def test_search_by_upload_finds_that_crop_first(server, indexed):
    path, data = _crop_bytes(indexed, "0003_c2")
    result = httpx.post(f"{server}/api/search", files={"image": (path.name, data, "image/jpeg")},
                        data={"topk": "3"}).json()
    first = result["hits"][0]
    assert first["path"] == path.relative_to(indexed[1]).as_posix() and first["score"] > 0.999
    assert result["query"] == {"upload": True}


def test_camera_and_time_filters(server):
    by_camera = httpx.post(f"{server}/api/search", data={"item_id": 1, "topk": 40, "camera": ["2", "3"]}).json()
    assert by_camera["hits"] and {h["camera"] for h in by_camera["hits"]} <= {2, 3}
    own = httpx.get(f"{server}/api/items/1").json()["camera"]
    other = httpx.post(f"{server}/api/search", data={"item_id": 1, "topk": 40, "exclude_same_camera": "true"}).json()
    assert other["hits"] and own not in {h["camera"] for h in other["hits"]}
    window = {"item_id": 1, "topk": 40, "since": str(T0 + 600), "until": "2024-05-01T10:20:00"}
    timed = httpx.post(f"{server}/api/search", data=window).json()["hits"]
    assert len(timed) == 11 and all(T0 + 600 <= h["time"] <= T0 + 1200 for h in timed)


def test_excluding_the_uploads_camera_needs_that_camera(server, indexed):
    path, data = _crop_bytes(indexed)
    files = {"image": (path.name, data, "image/jpeg")}
    refused = httpx.post(f"{server}/api/search", files=files, data={"exclude_same_camera": "true"})
    assert refused.status_code == 400 and "query_camera" in refused.json()["error"]
    hits = httpx.post(f"{server}/api/search", files=files, data={"exclude_same_camera": "true", "query_camera": "1",
                                                                "topk": "40"}).json()["hits"]
    assert hits and 1 not in {h["camera"] for h in hits}


def test_item_json_and_image_come_from_the_database(server, indexed):
    item = httpx.get(f"{server}/api/items/7").json()
    assert not Path(item["path"]).is_absolute() and item["time_text"].endswith("UTC")
    image = httpx.get(f"{server}{item['image']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (indexed[1] / item["path"]).read_bytes()


def test_an_empty_gallery_says_so(tmp_path, serve_embedder):
    app, gallery = make_app(tmp_path / "empty", serve_embedder)
    with gallery, LiveServer(app) as url:
        assert httpx.get(f"{url}/api/health").json()["gallery_size"] == 0
        answer = httpx.post(f"{url}/api/search", data={"item_id": 1})
        assert answer.status_code == 409 and "the gallery is empty" in answer.json()["error"]


def test_adding_searching_and_deleting_on_loopback_without_token(writable, serve_embedder, indexed):
    app, gallery = make_app(writable, serve_embedder)
    crop = sorted(indexed[1].rglob("*.jpg"))[0]
    flipped = _mirrored(crop)
    with gallery, LiveServer(app) as url:
        added = httpx.post(f"{url}/api/items", files={"image": ("new.png", flipped, "image/png")},
                           data={"camera": "7", "timestamp": "2024-05-02T08:00:00", "tags": '{"note": "door"}'})
        assert added.status_code == 200, added.text
        item = added.json()["added"][0]
        assert item["camera"] == 7 and item["tags"] == {"note": "door"} and not Path(item["path"]).is_absolute()
        stored = (indexed[1] / item["path"]).resolve()  # relative to the indexed root, written into DB/uploads
        assert stored.parent == (writable / "uploads").resolve()
        assert stored.read_bytes() == flipped and httpx.get(f"{url}{item['image']}").content == flipped
        hits = httpx.post(f"{url}/api/search", data={"item_id": item["id"], "camera": "1", "topk": 5}).json()["hits"]
        assert hits and all(h["camera"] == 1 for h in hits)
        assert httpx.get(f"{url}/api/health").json()["gallery_size"] == 41
        deleted = httpx.delete(f"{url}/api/items/{item['id']}")
        assert deleted.status_code == 200 and deleted.json()["gallery_size"] == 40
        assert not stored.exists() and httpx.get(f"{url}/api/items/{item['id']}").status_code == 404
        indexed_item = httpx.get(f"{url}/api/items/1").json()
        assert httpx.delete(f"{url}/api/items/1").status_code == 200
        assert (indexed[1] / indexed_item["path"]).is_file()  # an indexed file is the user's: never deleted


def _mirrored(path: Path) -> bytes:
    import io

    from PIL import Image, ImageOps

    buffer = io.BytesIO()
    ImageOps.mirror(Image.open(path).convert("RGB")).save(buffer, format="PNG")
    return buffer.getvalue()


def test_adding_a_crop_the_gallery_holds_returns_its_item(writable, serve_embedder, indexed):
    app, gallery = make_app(writable, serve_embedder)
    crop = sorted(indexed[1].rglob("*.jpg"))[0]
    with gallery, LiveServer(app) as url:
        again = httpx.post(f"{url}/api/items", files={"image": ("again.jpg", crop.read_bytes(), "image/jpeg")})
        assert again.json()["added"][0]["path"] == crop.relative_to(indexed[1]).as_posix()
        assert httpx.get(f"{url}/api/health").json()["gallery_size"] == 40
    assert not (writable / "uploads").exists() or not any((writable / "uploads").iterdir())


def test_writes_need_the_token_when_one_is_set(writable, serve_embedder, indexed):
    app, gallery = make_app(writable, serve_embedder, token="s3cret")
    crop = sorted(indexed[1].rglob("*.jpg"))[-1]
    files = {"image": ("x.png", _mirrored(crop), "image/png")}
    with gallery, LiveServer(app) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            refused = httpx.post(f"{url}/api/items", files=files, headers=headers)
            assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
            assert httpx.delete(f"{url}/api/items/1", headers=headers).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        added = httpx.post(f"{url}/api/items", files=files, headers=good)
        assert added.status_code == 200
        assert httpx.delete(f"{url}/api/items/{added.json()['added'][0]['id']}", headers=good).status_code == 200
        assert httpx.post(f"{url}/api/search", data={"item_id": 1}).status_code == 200  # reading needs none


def test_writes_are_refused_beyond_loopback_without_a_token(writable, serve_embedder, indexed):
    from reidkit.serve import ServeSettings

    settings = ServeSettings(host="0.0.0.0")
    assert "without --token" in settings.exposure_warning() and settings.write_policy == "refused"
    app, gallery = make_app(writable, serve_embedder, host="0.0.0.0")  # policy of a wildcard bind, served on loopback
    crop = sorted(indexed[1].rglob("*.jpg"))[0]
    with gallery, LiveServer(app) as url:
        added = httpx.post(f"{url}/api/items", files={"image": ("x.png", _mirrored(crop), "image/png")})
        assert added.status_code == 403 and "--token" in added.json()["error"]
        assert httpx.delete(f"{url}/api/items/1").status_code == 403
        assert httpx.get(f"{url}/api/health").json()["gallery_size"] == 40


def test_exposure_warning_and_loopback_names():
    from reidkit.serve import ServeSettings
    from reidkit.serve.security import is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org")] == [False] * 4
    assert ServeSettings().exposure_warning() is None and ServeSettings().write_policy == "open"
    assert ServeSettings(host="0.0.0.0", token="t").exposure_warning() is None


def test_add_checks_its_metadata(writable, serve_embedder, indexed):
    app, gallery = make_app(writable, serve_embedder)
    crop = sorted(indexed[1].rglob("*.jpg"))[0]
    files = {"image": ("x.png", _mirrored(crop), "image/png")}
    cases = [({"tags": "not json"}, "is not JSON"), ({"tags": "[1, 2]"}, "JSON object"),
             ({"timestamp": "soon"}, "cannot read 'soon' as a time"), ({"camera": "front"}, "camera"),
             ({"timestamp": "nan"}, "finite")]
    with gallery, LiveServer(app) as url:
        for data, expected in cases:
            answer = httpx.post(f"{url}/api/items", files=files, data=data)
            assert 400 <= answer.status_code < 500 and expected in answer.json()["error"], (data, answer.text)
        assert httpx.post(f"{url}/api/items", data={"camera": "1"}).status_code == 422  # no image at all
        assert httpx.get(f"{url}/api/health").json()["gallery_size"] == 40


def test_images_only_for_indexed_image_files(writable, serve_embedder):
    import numpy as np

    from reidkit.gallery import Gallery, Item

    with Gallery(writable) as gallery:
        ids = gallery.add(np.ones((2, 40), np.float32) * [[1], [2]] + np.eye(2, 40),
                          [Item("../../../../etc/passwd"), Item("gone/missing.jpg")])
    app, gallery = make_app(writable, serve_embedder)
    with gallery, LiveServer(app) as url:
        not_image = httpx.get(f"{url}/api/items/{ids[0]}/image")
        assert not_image.status_code == 404 and "not an image file" in not_image.json()["error"]
        missing = httpx.get(f"{url}/api/items/{ids[1]}/image")
        assert missing.status_code == 404 and "no longer on disk" in missing.json()["error"]


def test_a_bug_is_answered_500_without_a_traceback(indexed, serve_embedder):
    app, gallery = make_app(indexed[0], serve_embedder, uploads=None)

    def broken() -> dict:
        raise RuntimeError("secret internal detail")

    app.state.service.health = broken
    with gallery, LiveServer(app) as url:
        answer = httpx.get(f"{url}/api/health")
        assert answer.status_code == 500 and "secret" not in answer.text
        assert answer.json() == {"error": "internal error (the server log has the details)"}
        assert httpx.get(f"{url}/api/items/1").status_code == 200
