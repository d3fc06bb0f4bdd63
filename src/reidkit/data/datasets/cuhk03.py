"""CUHK03, labeled or detected boxes, new 767/700 protocol (Zhong et al. 2017).

Reads `cuhk03_release/cuhk-03.mat` (MATLAB v7.3 = HDF5: `labeled`/`detected` hold one cell per camera pair,
persons x 10 images, each image a uint8 array stored transposed) and `cuhk03_new_protocol_config_<type>.mat`
(classic MATLAB: filelist, labels, camId, train_idx, query_idx, gallery_idx, 1-based). The images are written
once to `<dataset>/cuhk03_images/<type>/` with torchreid's names (pair_person_view_image.png) and reused.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

from reidkit.data.base import DATASETS, ImageDataset, Sample, find_dataset_dir
from reidkit.errors import DatasetError
from reidkit.utils.io import honour_umask

IMAGE_TYPES = ("labeled", "detected")
MAT_FILE = "cuhk03_release/cuhk-03.mat"
PROTOCOL_KEYS = ("filelist", "labels", "camId", "train_idx", "query_idx", "gallery_idx")
IMAGES_PER_PERSON = 10  # 5 per view; the second view starts at index 5
LAYOUT = """  <root>/cuhk03/  (or <root> itself)
      cuhk03_release/cuhk-03.mat
      cuhk03_new_protocol_config_labeled.mat
      cuhk03_new_protocol_config_detected.mat"""


def _matlab_string(value: object) -> str:
    """A MATLAB char array as loadmat returns it inside a cell: arrays nested around one str."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise DatasetError(f"expected one file name per filelist entry, got an array of shape {value.shape}")
        value = value.reshape(-1)[0]
    return str(value)


def load_protocol(path: Path) -> dict[str, np.ndarray]:
    """The protocol config: file names, labels, 0-based cameras and 0-based train/query/gallery indices."""
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError, TypeError) as exc:
        raise DatasetError(f"{path} cannot be read as a MATLAB file ({exc}); expected the CUHK03 new-protocol config "
                           f"with keys {', '.join(PROTOCOL_KEYS)}") from None
    missing = [key for key in PROTOCOL_KEYS if key not in mat]
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)}; expected keys {', '.join(PROTOCOL_KEYS)}")
    protocol = {"filelist": np.array([_matlab_string(v) for v in mat["filelist"].ravel()]),
                "labels": mat["labels"].ravel().astype(np.int64),
                "camids": mat["camId"].ravel().astype(np.int64) - 1}
    count = len(protocol["filelist"])
    if len(protocol["labels"]) != count or len(protocol["camids"]) != count:
        raise DatasetError(f"{path}: filelist, labels and camId must have one entry per image "
                           f"(got {count}, {len(protocol['labels'])}, {len(protocol['camids'])})")
    for key in ("train_idx", "query_idx", "gallery_idx"):
        indices = mat[key].ravel().astype(np.int64) - 1
        if indices.size == 0 or indices.min() < 0 or indices.max() >= count:
            raise DatasetError(f"{path}: {key} must hold 1-based indices into filelist (1..{count}); "
                               f"got {indices.size} values in [{indices.min(initial=0) + 1}, "
                               f"{indices.max(initial=-1) + 1}]")
        protocol[key] = indices
    return protocol


def _write_images(handle: h5py.File, image_type: str, out_dir: Path) -> int:
    """Every non-empty image of `image_type` as PNG in out_dir; returns how many."""
    written = 0
    for pair, pair_ref in enumerate(np.asarray(handle[image_type]).ravel()):
        cells = np.asarray(handle[pair_ref]).T  # persons x images after undoing MATLAB's column-major order
        for person, refs in enumerate(cells):
            for index, ref in enumerate(refs):
                image = np.asarray(handle[ref]).T
                if image.ndim != 3 or image.size == 0:
                    continue  # empty cell: some persons lack images in one view
                view = 1 if index < IMAGES_PER_PERSON // 2 else 2
                name = f"{pair + 1}_{person + 1:03d}_{view}_{index + 1:02d}.png"
                Image.fromarray(image.astype(np.uint8)).save(out_dir / name)
                written += 1
    return written


def _read_images(mat_path: Path, image_type: str, out_dir: Path) -> int:
    try:
        handle = h5py.File(mat_path, "r")
    except OSError as exc:
        raise DatasetError(f"{mat_path} cannot be opened as MATLAB v7.3 (HDF5) ({exc})") from None
    with handle:
        if image_type not in handle:
            raise DatasetError(f"{mat_path} has no {image_type!r} entry (found {', '.join(handle)}); "
                               f"expected the CUHK03 release with {' and '.join(IMAGE_TYPES)} cells")
        try:
            return _write_images(handle, image_type, out_dir)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{mat_path}: the {image_type} entry is not a cell of camera pairs holding "
                               f"persons x {IMAGES_PER_PERSON} images ({exc})") from None


def extract_images(mat_path: Path, image_type: str, out_dir: Path) -> Path:
    """The folder of extracted images, written on first use only.

    Written into a temporary folder renamed into place, so an interrupted or concurrent extraction never leaves
    a half-filled cache behind.
    """
    if out_dir.is_dir():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    honour_umask(tmp, directory=True)  # it becomes the images folder
    try:
        if _read_images(mat_path, image_type, tmp) == 0:
            raise DatasetError(f"{mat_path}: the {image_type} cells hold no images")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not out_dir.is_dir():  # not a concurrent extraction that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


@DATASETS.register("cuhk03")
class CUHK03(ImageDataset):
    """`image_type` "detected" (default, as torchreid) or "labeled"."""

    def __init__(self, root: str | os.PathLike, *, image_type: str = "detected", **options: object) -> None:
        if image_type not in IMAGE_TYPES:
            raise DatasetError(f"CUHK03 image_type must be one of {', '.join(IMAGE_TYPES)}, got {image_type!r}")
        config = f"cuhk03_new_protocol_config_{image_type}.mat"
        folder = find_dataset_dir(root, ("cuhk03", ""), (MAT_FILE, config), "CUHK03", LAYOUT)
        protocol = load_protocol(folder / config)
        image_dir = extract_images(folder / MAT_FILE, image_type, folder / "cuhk03_images" / image_type)
        subsets = {key: self._subset(protocol, protocol[key], image_dir, folder / config)
                   for key in ("train_idx", "query_idx", "gallery_idx")}
        super().__init__(subsets["train_idx"], subsets["query_idx"], subsets["gallery_idx"],
                         name=f"CUHK03-{image_type}", root=folder, **options)

    @staticmethod
    def _subset(protocol: dict[str, np.ndarray], indices: np.ndarray, image_dir: Path, config: Path) -> list[Sample]:
        samples = []
        for index in indices:
            path = image_dir / protocol["filelist"][index]
            if not path.is_file():
                raise DatasetError(f"{config} lists {path.name}, which cuhk-03.mat does not hold (not in {image_dir})")
            samples.append((str(path), int(protocol["labels"][index]), int(protocol["camids"][index])))
        return samples


@DATASETS.register("cuhk03_labeled")
class CUHK03Labeled(CUHK03):
    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        super().__init__(root, image_type="labeled", **options)


@DATASETS.register("cuhk03_detected")
class CUHK03Detected(CUHK03):
    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        super().__init__(root, image_type="detected", **options)
