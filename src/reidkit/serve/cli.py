"""`reidkit serve`: the search page and JSON API over a gallery. Arguments are added to the main parser by
reidkit/cli.py; FastAPI, uvicorn and the model load only when the command runs."""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from reidkit.errors import GalleryError, ReidkitError

TOKEN_ENV = "REIDKIT_SERVE_TOKEN"

SERVE_EPILOG = f"""examples:
  reidkit serve --db gallery/                                 # the model the gallery was indexed with
  reidkit serve --db gallery/ --weights model.onnx --port 8080
  reidkit serve --db gallery/ --host 0.0.0.0 --token "$(openssl rand -hex 16)"

Open http://127.0.0.1:8000/ : drop a crop, see the ranked matches (score, camera, time) and where the calibrated
same-person threshold falls; click a match to search with it. API: POST /api/search, GET /api/items/ID(/image),
POST /api/items, DELETE /api/items/ID, GET /api/health; OpenAPI at /docs.

Binds 127.0.0.1 unless --host says otherwise. Adding and deleting need 'Authorization: Bearer TOKEN' when a
token is set (--token or ${TOKEN_ENV}); bound beyond loopback without one, the server warns and refuses them.
Uploads over --max-upload-mb (default 10) or --max-pixels are refused; only JPEG, PNG, BMP and WebP are decoded;
no CORS unless --cors-origin; images are served only for indexed items, by the path the database holds.
Added crops are written to --uploads (default: DB/uploads for a gallery folder)."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from reidkit.serve.security import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB

    parser.add_argument("--db", required=True, metavar="URI",
                        help="gallery folder, http(s)://HOST:19530 (Milvus) or FILE.db (Milvus Lite)")
    parser.add_argument("--weights", metavar="CKPT|ONNX", help="model (default: the one the gallery was indexed with)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    parser.add_argument("--token", metavar="T", help=f"bearer token of the write endpoints (default ${TOKEN_ENV})")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="same-person cosine threshold shown (default: the model's calibrated one)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest request body (default {DEFAULT_MAX_UPLOAD_MB:g})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"largest image, width x height (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--uploads", metavar="DIR", help="folder for crops added through the API")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow this origin (e.g. https://app.example) to call the API from its pages")
    parser.add_argument("--create", action="store_true", help="start on a new, empty gallery at --db")
    parser.add_argument("--db-token", metavar="T", help="Milvus server token (default $REIDKIT_GALLERY_TOKEN)")
    parser.add_argument("--collection", default="reidkit_gallery", metavar="NAME", help="Milvus collection")
    parser.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow unpickling a checkpoint that holds more than tensors (only for files you trust)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")


def settings_from_args(args: argparse.Namespace) -> Any:
    from reidkit.serve.security import ServeSettings

    if not 0 <= args.port <= 65535:
        raise ReidkitError(f"--port {args.port}: expected 0 to 65535")
    if args.max_upload_mb <= 0 or args.max_pixels < 1:
        raise ReidkitError("--max-upload-mb and --max-pixels must be positive")
    return ServeSettings(host=args.host, token=args.token or os.environ.get(TOKEN_ENV) or None,
                         max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                         cors_origins=tuple(args.cors_origin), threshold=args.threshold)


def _open_gallery(args: argparse.Namespace) -> Any:
    from reidkit.gallery.base import Gallery, uri_scheme
    from reidkit.gallery.cli import TOKEN_ENV as DB_TOKEN_ENV

    options: dict[str, Any] = {"must_exist": not args.create}
    if uri_scheme(args.db) != "folder":
        options.update(token=args.db_token or os.environ.get(DB_TOKEN_ENV), collection=args.collection)
    return Gallery(args.db, **options)


def uploads_folder(args: argparse.Namespace) -> Path | None:
    """--uploads, else DB/uploads beside a gallery folder's database; None (adding unavailable) for Milvus."""
    from reidkit.gallery.base import uri_scheme

    if args.uploads:
        return Path(args.uploads).expanduser().absolute()
    return Path(args.db).expanduser().absolute() / "uploads" if uri_scheme(args.db) == "folder" else None


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why there is none (port taken, unknown address)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise ReidkitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from reidkit.deploy.embedder import Embedder
    from reidkit.serve.app import create_app
    from reidkit.serve.service import GalleryService

    settings = settings_from_args(args)
    with _open_gallery(args) as gallery:
        weights = args.weights or gallery.notes("weights")
        if not weights:
            raise GalleryError(f"{args.db} does not record the model it was indexed with; pass --weights")
        with listen(args.host, args.port) as sock:  # a taken port is reported before the model loads
            embedder = Embedder.load(weights, device=args.device, trust_checkpoint=args.trust_checkpoint)
            gallery.check_fingerprint(embedder.fingerprint, "serve")
            service = GalleryService(gallery, embedder, threshold=args.threshold, uploads=uploads_folder(args))
            warning = settings.exposure_warning()
            if warning:
                print(f"reidkit: warning: {warning}", file=sys.stderr)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"reidkit serve: http://{shown}:{port}/ ({len(gallery)} items in {args.db}, {embedder!r}); "
                  "Ctrl-C stops it", flush=True)
            config = uvicorn.Config(create_app(service, settings), log_level="info",
                                    access_log=not args.no_access_log)
            try:
                uvicorn.Server(config).run(sockets=[sock])
            except KeyboardInterrupt:  # uvicorn shuts down cleanly, then hands Ctrl-C on: the normal way to stop
                pass
    print("reidkit serve: stopped", flush=True)
    return 0
