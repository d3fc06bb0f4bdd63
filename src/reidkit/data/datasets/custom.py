"""Bring your own data, without code, in one of three layouts (`build_dataset("custom", root=...)`):

1. one CSV file (root is the file) with a header `path,pid,camid,split`, split in train/query/gallery;
2. a folder with train.csv, query.csv and gallery.csv, each with a header `path,pid,camid`;
3. a folder with train/, query/ and gallery/, each holding <pid>/<camid>/<image files>.

Pids and camids are integers (camids from 0); relative image paths are relative to the CSV's folder.
For a layout of your own, register a dataset class: see reidkit.data.base.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from reidkit.data.base import DATASETS, ImageDataset, Sample, list_images
from reidkit.errors import DatasetError

SUBSETS = ("train", "query", "gallery")
LAYOUT = """  <root>.csv with header path,pid,camid,split   (split: train, query or gallery)
  or <root>/train.csv, query.csv, gallery.csv with header path,pid,camid
  or <root>/train/<pid>/<camid>/<image>, <root>/query/..., <root>/gallery/...
  (pids and camids are integers; camids start at 0)"""


def _integer(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {what} {text!r} is not an integer") from None


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV whose header holds `columns`; a DatasetError naming the file otherwise."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}: header {reader.fieldnames} lacks {', '.join(missing)}; expected a "
                                   f"first line {','.join(columns)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path} cannot be read as CSV ({exc})") from None


def rows_to_samples(rows: list[dict[str, str]], csv_path: Path) -> list[Sample]:
    samples = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path}:{line}"
        if not row.get("path"):
            raise DatasetError(f"{where}: empty path")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise DatasetError(f"{where}: image {path} does not exist (relative paths start at {csv_path.parent})")
        samples.append((str(path), _integer(row["pid"], "pid", where), _integer(row["camid"], "camid", where)))
    return samples


def read_single_csv(path: Path) -> dict[str, list[Sample]]:
    rows = read_csv(path, ("path", "pid", "camid", "split"))
    unknown = sorted({row["split"] for row in rows} - set(SUBSETS))
    if unknown:
        raise DatasetError(f"{path}: unknown split values {unknown}; expected {', '.join(SUBSETS)}")
    return {subset: rows_to_samples([r for r in rows if r["split"] == subset], path) for subset in SUBSETS}


def read_folder(folder: Path) -> list[Sample]:
    """<folder>/<pid>/<camid>/<image> -> samples."""
    samples = []
    for pid_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for cam_dir in sorted(p for p in pid_dir.iterdir() if p.is_dir()):
            pid = _integer(pid_dir.name, "person folder name", str(pid_dir))
            camid = _integer(cam_dir.name, "camera folder name", str(cam_dir))
            samples += [(str(path), pid, camid) for path in list_images(cam_dir)]
    return samples


def read_layout(root: Path) -> dict[str, list[Sample]]:
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_single_csv(root)
    if all((root / f"{subset}.csv").is_file() for subset in SUBSETS):
        return {s: rows_to_samples(read_csv(root / f"{s}.csv", ("path", "pid", "camid")), root / f"{s}.csv")
                for s in SUBSETS}
    if all((root / subset).is_dir() for subset in SUBSETS):
        return {subset: read_folder(root / subset) for subset in SUBSETS}
    raise DatasetError(f"custom dataset: {root} is neither a CSV file nor a folder with "
                       f"train/query/gallery CSV files or subfolders. Expected layout:\n{LAYOUT}")


@DATASETS.register("custom")
class CustomDataset(ImageDataset):
    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        root = Path(root).expanduser()
        subsets = read_layout(root)
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], name=f"custom ({root.name})",
                         root=root, **options)
