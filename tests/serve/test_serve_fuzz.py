"""Bad input against a live server: each case is answered 4xx with a JSON message, and the server keeps answering.
Also what must not be reachable: listings, paths outside the page's files, other sites (CORS, cross-site posts,
foreign Host names)."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import httpx
import pytest
from PIL import Image


def _jpeg(size=(32, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 60, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _noise_jpeg() -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real 1-bit PNG of width x height zeros: tens of kilobytes that decode to `width * height` pixels."""
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 500) for _ in range(height // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * 20_000_000)
    return buffer.getvalue()


def _upload(data: bytes, name: str = "q.jpg", kind: str = "image/jpeg") -> dict:
    return {"files": {"image": (name, data, kind)}}


# Each case builds its request when it runs (the bombs and the 11 MB body are made only then).
UPLOAD_CASES = {
    "not an image": (lambda: _upload(b"just some text\n" * 20, "q.txt", "text/plain"), 415, "not an image"),
    "jpeg cut in its header": (lambda: _upload(_jpeg((64, 128))[:300]), 400, "could not be read"),
    "jpeg cut in its data": (lambda: _upload(_noise_jpeg()[:6000]), 400, "truncated"),
    "1x1": (lambda: _upload(_jpeg((1, 1))), 400, "at least 8x8"),
    "too many pixels": (lambda: _upload(_jpeg((6000, 4200))), 413, "the limit is"),
    "over 10 MB": (lambda: _upload(b"\xff\xd8" + b"\0" * (11 * 2**20)), 413, "upload limit"),
    "png bomb": (lambda: _upload(png_bomb(), "bomb.png", "image/png"), 413, "pixels"),
    "zip bomb": (lambda: _upload(zip_bomb(), "bomb.zip", "application/zip"), 415, "not an image"),
    "empty file": (lambda: _upload(b""), 400, "empty"),
    "svg": (lambda: _upload(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "a.svg", "image/svg+xml"), 415,
            "not an image"),
    "wrong field name": (lambda: {"files": {"file": ("q.jpg", _jpeg(), "image/jpeg")}}, 422,
                         "unknown field 'file'"),
    "no query at all": (lambda: {"data": {"topk": "5"}}, 400, "either an image"),
    "image and item id": (lambda: {**_upload(_jpeg()), "data": {"item_id": "1"}}, 400, "either an image"),
    "field name case": (lambda: {"data": {"item_id": "1", "topK": "5"}}, 422, "unknown field 'topK'"),
    "topk 0": (lambda: {"data": {"item_id": "1", "topk": "0"}}, 422, "topk"),
    "topk -1": (lambda: {"data": {"item_id": "1", "topk": "-1"}}, 422, "topk"),
    "topk 10^9": (lambda: {"data": {"item_id": "1", "topk": str(10**9)}}, 422, "topk"),
    "topk text": (lambda: {"data": {"item_id": "1", "topk": "many"}}, 422, "topk"),
    "unknown item": (lambda: {"data": {"item_id": "999999"}}, 404, "no item with id 999999"),
    "negative item": (lambda: {"data": {"item_id": "-3"}}, 422, "item_id"),
    "huge item id": (lambda: {"data": {"item_id": str(2**70)}}, 422, "item_id"),
    "traversal item id": (lambda: {"data": {"item_id": "../../etc/passwd"}}, 422, "item_id"),
    "camera text": (lambda: {"data": {"item_id": "1", "camera": "front"}}, 422, "camera"),
    "bad time": (lambda: {"data": {"item_id": "1", "since": "yesterday"}}, 400, "cannot read 'yesterday'"),
    "infinite time": (lambda: {"data": {"item_id": "1", "until": "inf"}}, 400, "finite"),
    "since after until": (lambda: {"data": {"item_id": "1", "since": "2024-05-02", "until": "2024-05-01"}}, 400,
                          "since"),
    "json body": (lambda: {"json": {"item_id": 1}}, 400, "either an image"),
    "gzip-encoded body": (lambda: {"content": zlib.compress(b"x" * 100_000), "headers": {"content-encoding": "gzip",
                           "content-type": "multipart/form-data; boundary=zz"}}, 400, ""),
}


@pytest.mark.parametrize("case", list(UPLOAD_CASES))
def test_bad_search_requests_get_4xx_and_the_server_keeps_answering(server, case):
    build, status, expected = UPLOAD_CASES[case]
    answer = httpx.post(f"{server}/api/search", timeout=60, **build())
    assert answer.status_code == status, answer.text
    assert expected in answer.json()["error"]
    assert httpx.get(f"{server}/api/health").status_code == 200
    assert httpx.post(f"{server}/api/search", data={"item_id": 2, "topk": 3}).status_code == 200


ITEM_PATHS = ["/api/items/999999", "/api/items/-1", "/api/items/abc", "/api/items/1.5", f"/api/items/{2**64}",
              "/api/items/..%2F..%2Fetc%2Fpasswd", "/api/items/%2e%2e/image", "/api/items/1%00/image",
              "/api/items/999999/image", "/api/items/1/image/extra", "/api/items/%20/image"]


@pytest.mark.parametrize("path", ITEM_PATHS)
def test_bad_item_paths_get_4xx(server, path):
    answer = httpx.get(f"{server}{path}")
    assert 400 <= answer.status_code < 500 and answer.json()["error"], answer.text
    assert httpx.get(f"{server}/api/items/1").status_code == 200


@pytest.mark.parametrize("path", ["/static/", "/static", "/static/..%2Fapp.py", "/static/%2e%2e%2fservice.py",
                                  "/static/index.html", "/static/app.js.map", "/docs/assets/", "/docs/assets/index.j2",
                                  "/api/", "/api/items", "/uploads/", "/..%2F..%2Fetc%2Fpasswd"])
def test_no_listing_and_nothing_outside_the_pages_files(server, path):
    answer = httpx.get(f"{server}{path}")
    assert answer.status_code in (404, 405), (path, answer.status_code, answer.text[:200])
    assert "<title>Index of" not in answer.text


def test_page_and_docs_are_served_locally(server):
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "//" not in page.text.split("<body>")[0]
    assert httpx.get(f"{server}/static/app.js").headers["content-type"].startswith("text/javascript")
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert httpx.get(f"{server}/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert "/api/search" in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_no_cors_and_protective_headers(server):
    origin = {"Origin": "http://elsewhere.example"}
    preflight = httpx.options(f"{server}/api/search", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    answer = httpx.get(f"{server}/api/health", headers=origin)
    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_cross_site_posts_and_foreign_host_names_are_refused(server):
    cross = httpx.post(f"{server}/api/search", data={"item_id": 1}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
    same = httpx.post(f"{server}/api/search", data={"item_id": 1}, headers={"Origin": server})
    assert same.status_code == 200
    rebound = httpx.get(f"{server}/api/health", headers={"Host": "evil.example"})
    assert rebound.status_code == 400


def test_cors_only_for_origins_named(indexed, serve_embedder):
    from serve_helpers import LiveServer, make_app

    app, gallery = make_app(indexed[0], serve_embedder, uploads=None, cors_origins=("http://app.example",))
    with gallery, LiveServer(app) as url:
        allowed = httpx.post(f"{url}/api/search", data={"item_id": 1}, headers={"Origin": "http://app.example"})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.get(f"{url}/api/health", headers={"Origin": "http://other.example"})
        assert "access-control-allow-origin" not in other.headers
