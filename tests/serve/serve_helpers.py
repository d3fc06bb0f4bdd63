"""Helpers of the serve tests: a live uvicorn server on 127.0.0.1 in a thread, and a small indexed gallery of
drawn people with cameras and times (a metadata CSV)."""
from __future__ import annotations

import csv
import threading
import time
from pathlib import Path
from typing import Any

T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC: the first crop's time; each next crop is a minute later


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 at a free port, in a thread; `with LiveServer(app) as url: ...`."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from reidkit.serve.cli import listen

        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def make_app(db: Path, embedder, **settings: Any) -> tuple[Any, Any]:
    """(app, gallery) over the gallery folder `db`; settings: uploads and threshold of GalleryService, the rest
    ServeSettings' fields (token, host, cors_origins, ...). Close the gallery when done."""
    from reidkit.gallery import Gallery
    from reidkit.serve import GalleryService, ServeSettings, create_app

    gallery = Gallery(db, must_exist=False)
    uploads = settings.pop("uploads", Path(db) / "uploads")
    service = GalleryService(gallery, embedder, threshold=settings.pop("threshold", None), uploads=uploads)
    return create_app(service, ServeSettings(**settings)), gallery


def write_meta_csv(crops: list[Path], folder: Path) -> Path:
    """camera (from the Market name), a time a minute apart, and the person of every crop."""
    target = folder / "meta.csv"
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "camera", "timestamp", "pid"])
        for i, path in enumerate(crops):
            pid, cam = path.name.split("_")[:2]
            writer.writerow([path.relative_to(folder).as_posix(), int(cam[1]), T0 + 60 * i, int(pid)])
    return target


def build_gallery(db: Path, checkpoint: Path, images: Path) -> None:
    from reidkit.deploy.embedder import Embedder
    from reidkit.gallery import Gallery
    from reidkit.gallery.indexing import find_images, index_images
    from reidkit.gallery.metadata import CsvMetadata

    meta = write_meta_csv(find_images(images), images)
    with Gallery(db) as gallery:
        index_images(gallery, Embedder.load(checkpoint), images, metadata=CsvMetadata(meta, images),
                     notes={"weights": str(checkpoint)})


def draw_unseen_view(target: Path, person: int, seed: int = 7) -> Path:
    """A new 64x32 crop of person `person` of gallery_helpers.draw_crops(folder, 40) (the same people and
    cameras: sampled in the same order from seed 0), in a new pose: a query the gallery does not hold."""
    import numpy as np

    from reidkit.data.synthetic import Camera, Identity, draw_person

    rng = np.random.default_rng(0)
    people = [Identity.sample(rng) for _ in range(10)]
    cameras = [Camera.sample(i, rng) for i in range(3)]
    image = draw_person(people[person], cameras[(person + 1) % 3], np.random.default_rng(seed), size=(64, 32))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=90)
    return target


def save_small_png(png: bytes, target: str | Path, colors: int = 128) -> None:
    """A screenshot as a palette PNG (a few hundred KB become well under 200 KB)."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors, dither=Image.Dither.NONE).save(target, optimize=True)
