"""`reidkit index` and `reidkit search`: a gallery database of your own cameras' crops, and a person searched in it.

Argument definitions are imported by reidkit/cli.py when the parser is built, so this module imports nothing
heavy at its top; the model (reidkit.deploy.Embedder), FAISS and pymilvus load when a command runs.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from reidkit.errors import GalleryError

TOKEN_ENV = "REIDKIT_GALLERY_TOKEN"

INDEX_EPILOG = """examples:
  reidkit index --weights runs/demo/checkpoints/last.pth --images crops/ --db gallery/ --pattern market1501
  reidkit index --weights model.onnx --images crops/ --db gallery/ --meta crops.csv --batch 128
  reidkit index --weights model.onnx --images crops/ --db http://milvus:19530 --token user:password
  reidkit index --db gallery/ --remove 'cam3/*'                  # delete items by a glob on their paths
  torchrun --nproc_per_node 4 -m reidkit index --weights ... --images crops/ --db gallery/

--db: a folder (SQLite + FAISS, the default: nothing to start), http(s)://HOST:19530 (a Milvus server; token
from --token or $REIDKIT_GALLERY_TOKEN) or a path ending in .db (Milvus Lite, a local folder). Images are
found recursively; each batch is one transaction, and a re-run skips every image already indexed (same content
hash), so an interrupted run resumes where it stopped. Unreadable images are listed at the end and skipped.
Metadata: --meta CSV (a `path` column relative to --images; camera, timestamp, track, pid; other columns become
tags) or --pattern (file-name fields such as '{pid}_c{camid}s{seq}_{frame}_{idx}.jpg', or market1501,
dukemtmcreid, msmt17, veri). The gallery records the model's fingerprint and refuses another model's features.
Exact search below --exact-limit items, IVF above. Under torchrun every process embeds a share of the images;
writes go through rank 0 for SQLite / Milvus Lite, every process inserts into a server. On a CPU shared with
other work, --threads 1 is often several times faster than PyTorch's default."""

SEARCH_EPILOG = """examples:
  reidkit search --db gallery/ --query person.jpg
  reidkit search --db gallery/ --query person.jpg --topk 10 --camera 3 --since 2024-05-01T08:00 --rerank

Prints a ranked table (rank, score = cosine similarity, camera, time in UTC, path) and writes the ranked-list
image (--output; borders green/red when the gallery was indexed with a --pattern that names people, grey
otherwise). --weights defaults to the model the gallery was indexed with. Filters run inside the database;
--rerank re-ranks the best 100 candidates with k-reciprocal re-ranking on their stored vectors."""


def _add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="URI",
                        help="gallery folder, http(s)://HOST:19530 (Milvus) or FILE.db (Milvus Lite)")
    parser.add_argument("--token", metavar="TOKEN", help=f"Milvus server token (default ${TOKEN_ENV})")
    parser.add_argument("--collection", default="reidkit_gallery", metavar="NAME", help="Milvus collection")
    parser.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads of the model (default: PyTorch's; 1 is often fastest on a busy machine)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow unpickling a checkpoint that holds more than tensors (only for files you trust)")
    parser.add_argument("--nprobe", type=int, metavar="N",
                        help="IVF lists probed per query (default: what `reidkit index --nprobe` stored, else 32)")


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    _add_db_arguments(parser)
    parser.add_argument("--weights", metavar="CKPT|ONNX", help="reidkit checkpoint, exported .onnx or TorchScript")
    parser.add_argument("--images", metavar="DIR", help="folder of crops (searched recursively)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--meta", metavar="CSV", help="metadata CSV: path, camera, timestamp, track, pid, tags")
    source.add_argument("--pattern", metavar="P",
                        help="file-name pattern, e.g. '{pid}_c{camid}s{seq}_{frame}_{idx}.jpg', or market1501, "
                             "dukemtmcreid, msmt17, veri")
    parser.add_argument("--batch", type=int, default=64, metavar="N", help="images per batch / transaction")
    parser.add_argument("--remove", metavar="GLOB", help="delete the items whose path matches GLOB, then exit")
    parser.add_argument("--exact-limit", type=int, metavar="N", help="exact search below N items, IVF above "
                        "(default 100000); stored with the gallery, like --nlist and --nprobe")
    parser.add_argument("--nlist", type=int, metavar="N", help="IVF lists (default 4 sqrt(items))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    _add_db_arguments(parser)
    parser.add_argument("--query", required=True, metavar="IMG", help="image of the person to find")
    parser.add_argument("--weights", metavar="CKPT|ONNX", help="model (default: the one the gallery was indexed with)")
    parser.add_argument("--topk", type=int, default=20, metavar="K", help="hits to show (default 20)")
    parser.add_argument("--camera", type=int, action="append", metavar="C", help="only camera C (repeatable)")
    parser.add_argument("--exclude-camera", type=int, action="append", metavar="C", help="not camera C (repeatable)")
    parser.add_argument("--since", metavar="T", help="not before T: seconds since 1970 or ISO date (UTC if no zone)")
    parser.add_argument("--until", metavar="T", help="not after T")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the best candidates")
    parser.add_argument("--output", metavar="IMG", help="ranked-list image (default ranked_<query name>.jpg)")


# ------------------------------------------------------------------------------------------------- commands
def _quiet_milvus_logs() -> None:
    # pymilvus logs every failed RPC with a traceback; the error reaches the user once, as one line.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def open_gallery(args: argparse.Namespace, *, must_exist: bool) -> Any:
    from reidkit.gallery.base import Gallery, uri_scheme

    options: dict[str, Any] = {"must_exist": must_exist}
    for key in ("exact_limit", "nlist", "nprobe"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if uri_scheme(args.db) != "folder":
        options.update(token=args.token or os.environ.get(TOKEN_ENV), collection=args.collection)
    return Gallery(args.db, **options)


def load_embedder(weights: str, args: argparse.Namespace, device: str, batch_size: int = 32) -> Any:
    from reidkit.deploy.embedder import Embedder

    if args.threads is not None:
        if args.threads < 1:
            raise GalleryError(f"--threads {args.threads}: expected an integer >= 1")
        import torch

        # Measured on 2 busy cores (load ~7): 8 crops through ResNet-18 took 0.09 s on one thread, 0.7-1.5 s on two.
        torch.set_num_threads(args.threads)
    return Embedder.load(weights, device=device, batch_size=batch_size, trust_checkpoint=args.trust_checkpoint)


class TorchWorkers:
    """torchrun's processes through reidkit.engine.distributed (gloo on CPU)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def all_gather(self, obj: Any) -> list[Any]:
        from reidkit.engine.distributed import all_gather_object

        return all_gather_object(obj)

    def broadcast(self, obj: Any) -> Any:
        from reidkit.engine.distributed import broadcast_object

        return broadcast_object(obj)


def run_index(args: argparse.Namespace) -> int:
    _quiet_milvus_logs()
    if args.remove is not None:
        return _remove(args)
    missing = [flag for flag, value in (("--weights", args.weights), ("--images", args.images)) if not value]
    if missing:
        raise GalleryError(f"reidkit index needs {' and '.join(missing)} (or --remove GLOB to delete items)")
    if args.batch < 1:
        raise GalleryError(f"--batch {args.batch}: expected an integer >= 1")
    from reidkit.engine import distributed

    info, device = distributed.init_distributed(args.device)
    try:
        return _index(args, info, str(device))
    finally:
        distributed.cleanup()


def _index(args: argparse.Namespace, info: Any, device: str) -> int:
    from reidkit.gallery.indexing import index_images
    from reidkit.gallery.metadata import metadata_source

    metadata = metadata_source(args.meta, args.pattern, args.images)
    embedder = load_embedder(args.weights, args, device, args.batch)
    workers = TorchWorkers(info.rank, info.world_size)
    gallery = open_gallery(args, must_exist=False) if info.rank == 0 else None
    if workers.broadcast(gallery is not None and not gallery.single_writer) and gallery is None:
        gallery = open_gallery(args, must_exist=False)  # a server: every process inserts its own batches
    # What `reidkit search` needs later: the model (its default --weights) and the pattern (person labels).
    notes = {"weights": os.path.abspath(args.weights), **({"pattern": args.pattern} if args.pattern else {})}
    try:
        summary = index_images(gallery, embedder, args.images, metadata=metadata, batch_size=args.batch,
                               workers=workers, progress=not args.no_progress, notes=notes)
    finally:
        if gallery is not None:
            gallery.close()
    if info.rank == 0:
        print(_summary_text(summary, args))
    return 0


def _summary_text(summary: Any, args: argparse.Namespace) -> str:
    rate = summary.images / summary.seconds if summary.seconds else 0.0
    lines = [f"indexed {summary.added} new images into {args.db} ({summary.already} already there, "
             f"{len(summary.failed)} unreadable); gallery size {summary.gallery_size}; {summary.images} images "
             f"in {summary.seconds:.1f} s ({rate:.1f} images/s)"]
    if (args.meta or args.pattern) and summary.without_metadata:
        lines.append(f"{summary.without_metadata} images had no metadata (no CSV row, or the name did not "
                     "match the pattern): indexed without camera / time / person")
    if summary.failed:
        lines.append("unreadable images (skipped):")
        lines += [f"  {path}: {why}" for path, why in summary.failed]
    lines.append(f"search it: reidkit search --db {args.db} --query IMAGE")
    return "\n".join(lines)


def _remove(args: argparse.Namespace) -> int:
    if args.weights or args.images:
        raise GalleryError("--remove deletes items; run it without --weights / --images")
    with open_gallery(args, must_exist=True) as gallery:
        removed = gallery.remove(args.remove)
        gallery.build_index()
        print(f"removed {removed} items matching {args.remove!r} from {args.db}; gallery size {len(gallery)}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    _quiet_milvus_logs()
    from reidkit.gallery.metadata import parse_time
    from reidkit.gallery.search import draw_ranked, format_table, search_image

    filters = {"camera": args.camera, "exclude_camera": args.exclude_camera,
               "since": None if args.since is None else parse_time(args.since, "--since"),
               "until": None if args.until is None else parse_time(args.until, "--until")}
    output = Path(args.output or f"ranked_{Path(args.query).stem}.jpg")
    image_format = _image_format(output)
    with open_gallery(args, must_exist=True) as gallery:
        weights = args.weights or gallery.notes("weights")
        if not weights:
            raise GalleryError(f"{args.db} does not record the model it was indexed with; pass --weights")
        embedder = load_embedder(weights, args, _device(args.device))
        gallery.check_fingerprint(embedder.fingerprint, "search")
        ranked = search_image(gallery, embedder, args.query, args.topk, rerank=args.rerank, **filters)
        print(format_table(ranked) if ranked else "no item passes the filters")
        if ranked:
            _save(draw_ranked(gallery, args.query, ranked), output, image_format)
            print(f"ranked list: {output}")
    return 0


def _device(preference: str) -> str:
    from reidkit.engine.distributed import resolve_device

    return str(resolve_device(preference))


def _image_format(path: Path) -> str:
    from PIL import Image

    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise GalleryError(f"--output {path}: unknown image type {path.suffix!r}; expected e.g. .jpg or .png")
    return image_format


def _save(image: Any, path: Path, image_format: str) -> None:
    from reidkit.utils.io import atomic_open

    with atomic_open(path, "wb") as handle:
        image.save(handle, format=image_format)
