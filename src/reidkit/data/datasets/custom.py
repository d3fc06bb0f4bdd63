"""Bring your own data, without code, in one of three layouts (`build_dataset("custom", root=...)`):

1. one CSV file (root is the file) with a header `path,pid,camid,split`, split in train/query/gallery;
2. a folder with train.csv, query.csv and gallery.csv, each with a header `path,pid,camid`;
3. a folder with train/, query/ and gallery/, each holding <pid>/<camid>/<image files>.

Pids and camids are integers (camids from 0); relative image paths are relative to the CSV's folder.
For a layout of your own, register a dataset class: see reidkit.data.base.

Camera ids are optional: leave out the camid column (or its values), or put the images straight into the
<pid>/ folders. Data without cameras is evaluated with the "self" protocol: only the query image itself is
removed from its gallery (a file listed in both query and gallery), every other image of its identity is a
match. Data with cameras uses the Market protocol (the query's identity under its own camera is removed), unless
no query identity appears in the gallery under another camera (tracking crops: one camera per identity): that
protocol would drop every match, so "self" is used, with a warning. `protocol` (auto, market, self) chooses.

`split: auto` splits a folder of identities (`<root>/<pid>/[<camid>/]<images>`, no train/query/gallery
folders) or a CSV without a split column, seeded and stored beside the data for reuse: see
reidkit.data.auto_split (options split_seed, train_ids, query_per_id, distractor_ids).
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

from reidkit.data.auto_split import RawSample, SplitOptions, auto_split
from reidkit.data.base import DATASETS, IMAGE_SUFFIXES, ImageDataset, Sample, list_images
from reidkit.errors import DatasetError

SUBSETS = ("train", "query", "gallery")
LAYOUT = """  <root>.csv with header path,pid,camid,split   (split: train, query or gallery)
  or <root>/train.csv, query.csv, gallery.csv with header path,pid,camid
  or <root>/train/<pid>/<camid>/<image>, <root>/query/..., <root>/gallery/...
  (pids and camids are integers; camids start at 0; camid is optional: no column, or <pid>/<image>)
  with split: auto, <root>/<pid>/[<camid>/]<image> or a CSV without the split column"""


def _integer(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {what} {text!r} is not an integer") from None


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV whose header holds `columns`; a DatasetError naming the file otherwise."""
    try:
        # utf-8-sig: Excel starts its UTF-8 CSV files with a byte-order mark, which would stick to "path"
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}: header {reader.fieldnames} lacks {', '.join(missing)}; expected a "
                                   f"first line {','.join(columns)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path} cannot be read as CSV ({exc})") from None


def rows_to_samples(rows: list[dict[str, str]], csv_path: Path) -> list[RawSample]:
    """(path, pid, camid or None: no camid column or an empty cell) of each row."""
    samples = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path}:{line}"
        if not row.get("path"):
            raise DatasetError(f"{where}: empty path")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise DatasetError(f"{where}: image {path} does not exist (relative paths start at {csv_path.parent})")
        camid = row.get("camid")
        camid = None if camid is None or not camid.strip() else _integer(camid, "camid", where)
        samples.append((str(path), _integer(row["pid"], "pid", where), camid))
    return samples


def read_single_csv(path: Path) -> dict[str, list[RawSample]]:
    rows = read_csv(path, ("path", "pid", "split"))
    unknown = sorted({row["split"] for row in rows} - set(SUBSETS))
    if unknown:
        raise DatasetError(f"{path}: unknown split values {unknown}; expected {', '.join(SUBSETS)}")
    return {subset: rows_to_samples([r for r in rows if r["split"] == subset], path) for subset in SUBSETS}


def read_folder(folder: Path) -> list[RawSample]:
    """<folder>/<pid>/<camid>/<image> -> samples; <folder>/<pid>/<image> -> samples without a camera (None)."""
    samples = []
    for pid_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        pid = _integer(pid_dir.name, "person folder name", str(pid_dir))
        cam_dirs = sorted(p for p in pid_dir.iterdir() if p.is_dir())
        images = list_images(pid_dir)
        if cam_dirs and images:
            raise DatasetError(f"{pid_dir} holds both images ({images[0].name}, ...) and camera folders "
                               f"({cam_dirs[0].name}, ...); expected one of <pid>/<camid>/<image> or <pid>/<image>")
        samples += [(str(path), pid, None) for path in images]
        for cam_dir in cam_dirs:
            camid = _integer(cam_dir.name, "camera folder name", str(cam_dir))
            samples += [(str(path), pid, camid) for path in list_images(cam_dir)]
    return samples


def read_layout(root: Path) -> dict[str, list[RawSample]]:
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_single_csv(root)
    if all((root / f"{subset}.csv").is_file() for subset in SUBSETS):
        return {s: rows_to_samples(read_csv(root / f"{s}.csv", ("path", "pid")), root / f"{s}.csv")
                for s in SUBSETS}
    if all((root / subset).is_dir() for subset in SUBSETS):
        return {subset: read_folder(root / subset) for subset in SUBSETS}
    raise DatasetError(f"custom dataset: {root} is neither a CSV file nor a folder with "
                       f"train/query/gallery CSV files or subfolders. Expected layout:\n{LAYOUT}")


def read_pool(root: Path) -> list[RawSample]:
    """The images of `split: auto`: a CSV without a split column, or a folder of identities."""
    if root.is_file() and root.suffix.lower() == ".csv":
        rows = read_csv(root, ("path", "pid"))
        if rows and "split" in rows[0]:
            raise DatasetError(f"{root} has a split column, and split: auto would ignore it: leave split out to "
                               "use it, or remove the column")
        return rows_to_samples(rows, root)
    if not root.is_dir():
        raise DatasetError(f"custom dataset: {root} does not exist. Expected layout:\n{LAYOUT}")
    if any((root / subset).is_dir() or (root / f"{subset}.csv").is_file() for subset in SUBSETS):
        raise DatasetError(f"custom dataset: {root} is already split (train/query/gallery), and split: auto "
                           "expects a folder of identities <pid>/[<camid>/]<image>: leave split out")
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if stray:
        raise DatasetError(f"custom dataset: {root} holds images outside identity folders ({stray[0]}, ...); "
                           "expected <root>/<pid>/[<camid>/]<image>")
    return read_folder(root)


def resolve_cameras(subsets: dict[str, list[RawSample]], root: Path) -> tuple[dict[str, list[Sample]], bool]:
    """Samples with integer camids and whether the data has cameras: all given, or none (then camid 0)."""
    given = [s for samples in subsets.values() for s in samples if s[2] is not None]
    absent = [s for samples in subsets.values() for s in samples if s[2] is None]
    if given and absent:
        raise DatasetError(f"custom dataset {root}: {absent[0][0]} has no camera id but {given[0][0]} has one; "
                           "give every image a camid, or none")
    return {name: [(p, pid, 0 if cam is None else cam) for p, pid, cam in samples]
            for name, samples in subsets.items()}, not absent


def has_cross_camera_match(query: list[Sample], gallery: list[Sample]) -> bool:
    cameras: dict[int, set[int]] = {}
    for _, pid, camid in gallery:
        cameras.setdefault(pid, set()).add(camid)
    return any(cameras.get(pid, set()) - {camid} for _, pid, camid in query)


def choose_protocol(protocol: str, has_cameras: bool, query: list[Sample], gallery: list[Sample], name: str) -> str:
    """The evaluation protocol of custom data: `protocol`, or for "auto" the one that keeps matches."""
    from reidkit.metrics.rank import RANK_PROTOCOLS

    if protocol != "auto" and protocol not in RANK_PROTOCOLS:
        raise DatasetError(f"{name}: protocol={protocol!r}: expected auto or one of {', '.join(RANK_PROTOCOLS)}")
    if protocol not in ("auto", "self") and not has_cameras:
        raise DatasetError(f"{name}: protocol={protocol!r} removes the query's identity under its camera, but the "
                           "data has no camera ids: use protocol self (or auto)")
    if protocol != "auto":
        return protocol
    if not has_cameras:
        return "self"
    if has_cross_camera_match(query, gallery):
        return "market"
    warnings.warn(f"{name}: no query identity appears in the gallery under another camera, so the market protocol "
                  "would drop every match; evaluating with protocol 'self' (only the query image itself is "
                  "removed). Set data.options.protocol to choose", stacklevel=3)
    return "self"


@DATASETS.register("custom")
class CustomDataset(ImageDataset):
    def __init__(self, root: str | os.PathLike, *, split: str | None = None, split_seed: int = 0,
                 train_ids: float = 0.5, query_per_id: int = 1, distractor_ids: float = 0.0,
                 protocol: str = "auto", **options: object) -> None:
        root = Path(root).expanduser()
        name = f"custom ({root.name})"
        if split not in (None, "auto"):
            raise DatasetError(f"{name}: split={split!r}: expected auto, or no split option (the layout's own)")
        if split == "auto":
            subsets = auto_split(read_pool(root), root, SplitOptions(split_seed, train_ids, query_per_id,
                                                                     distractor_ids), name)
        else:
            subsets = read_layout(root)
        resolved, self.has_cameras = resolve_cameras(subsets, root)
        super().__init__(resolved["train"], resolved["query"], resolved["gallery"], name=name, root=root, **options)
        self.eval_protocol = choose_protocol(protocol, self.has_cameras, self.query, self.gallery, name)
