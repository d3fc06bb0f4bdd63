"""Fixtures of the serve tests: a tiny real checkpoint (Top-DB-Net, ResNet-18, 64x32), a gallery of 40 drawn
crops indexed with it (cameras 1-3, times a minute apart), and live servers over it on 127.0.0.1."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gallery"))  # gallery_helpers: checkpoints, crops

from gallery_helpers import draw_crops, write_tiny_checkpoint  # noqa: E402
from serve_helpers import LiveServer, build_gallery, make_app  # noqa: E402


@pytest.fixture(scope="session")
def serve_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("serve_model") / "top_db_net.pth", 0)


@pytest.fixture(scope="session")
def serve_embedder(serve_checkpoint):
    from reidkit.deploy.embedder import Embedder

    return Embedder.load(serve_checkpoint)


@pytest.fixture(scope="session")
def indexed(tmp_path_factory, serve_checkpoint) -> tuple[Path, Path]:
    """(gallery folder, crops folder) of 40 indexed crops; read-only: copy the gallery to change it."""
    base = tmp_path_factory.mktemp("serve_gallery")
    crops = base / "crops"
    draw_crops(crops, 40)
    build_gallery(base / "gallery", serve_checkpoint, crops)
    return base / "gallery", crops


@pytest.fixture(scope="module")
def server(indexed, serve_embedder):
    """A live server (no token, loopback) over the shared read-only gallery: its base URL."""
    app, gallery = make_app(indexed[0], serve_embedder, uploads=None)
    with gallery, LiveServer(app) as url:
        yield url


@pytest.fixture
def writable(indexed, tmp_path) -> Path:
    """A copy of the indexed gallery that a test may change."""
    return Path(shutil.copytree(indexed[0], tmp_path / "gallery"))
