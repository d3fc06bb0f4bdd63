"""CUHK03 new protocol on a tiny cuhk-03.mat (HDF5, as MATLAB v7.3 writes it) and tiny protocol configs."""
from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from reidkit.data import build_dataset
from reidkit.errors import DatasetError

# Two camera pairs x 3 persons; person (pair 2, person 3) lacks its last view-2 image (an empty MATLAB cell).
PAIRS, PERSONS = 2, 3
COLORS = {"labeled": 40, "detected": 200}  # the two image types differ, to see which one was read


def image_array(kind: str, pair: int, person: int, index: int) -> np.ndarray:
    array = np.zeros((12, 6, 3), np.uint8)  # height x width x 3, as MATLAB shows it
    array[..., 0], array[..., 1], array[..., 2] = COLORS[kind], pair * 50 + person, index
    return array


def write_release_mat(path: Path) -> None:
    """cuhk-03.mat: `labeled`/`detected` = 1 x pairs cells of (10 x persons) cells, arrays stored transposed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = (str(i) for i in itertools.count())
    with h5py.File(path, "w") as handle:
        refs = handle.create_group("#refs#")
        for kind in COLORS:
            pair_refs = []
            for pair in range(PAIRS):
                cell = np.empty((10, PERSONS), dtype=h5py.ref_dtype)
                for person, index in itertools.product(range(PERSONS), range(10)):
                    if (pair, person, index) == (1, 2, 9):
                        empty = refs.create_dataset(next(names), data=np.zeros(2, np.uint64))
                        empty.attrs["MATLAB_empty"] = 1
                        cell[index, person] = empty.ref
                    else:
                        cell[index, person] = refs.create_dataset(
                            next(names), data=image_array(kind, pair, person, index).T).ref
                pair_refs.append(refs.create_dataset(next(names), data=cell, dtype=h5py.ref_dtype).ref)
            handle.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))


def file_name(pair: int, person: int, index: int) -> str:
    return f"{pair + 1}_{person + 1:03d}_{1 if index < 5 else 2}_{index + 1:02d}.png"


def write_protocol(path: Path) -> None:
    """Persons 1-3 (pair 1) train; persons 4-6 (pair 2): query = first view-1 image, gallery = view 2."""
    rows = [(pair, person, index) for pair in range(PAIRS) for person in range(PERSONS) for index in range(10)
            if (pair, person, index) != (1, 2, 9)]
    names = [file_name(*row) for row in rows]
    labels = [pair * PERSONS + person + 1 for pair, person, _ in rows]
    cams = [1 if index < 5 else 2 for _, _, index in rows]
    train = [i + 1 for i, row in enumerate(rows) if row[0] == 0]
    query = [i + 1 for i, row in enumerate(rows) if row[0] == 1 and row[2] == 0]
    gallery = [i + 1 for i, row in enumerate(rows) if row[0] == 1 and row[2] >= 5]
    column = lambda values: np.asarray(values, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    filelist = np.empty((len(names), 1), dtype=object)
    filelist[:, 0] = names
    scipy.io.savemat(path, {"filelist": filelist, "labels": column(labels), "camId": column(cams),
                            "train_idx": column(train), "query_idx": column(query), "gallery_idx": column(gallery)})


@pytest.fixture
def cuhk03_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cuhk03"
    write_release_mat(folder / "cuhk03_release" / "cuhk-03.mat")
    for kind in COLORS:
        write_protocol(folder / f"cuhk03_new_protocol_config_{kind}.mat")
    return tmp_path


@pytest.mark.parametrize("kind", ["labeled", "detected"])
def test_new_protocol_counts_pids_cameras_and_pixels(cuhk03_root, kind):
    data = build_dataset(f"cuhk03_{kind}", root=cuhk03_root)
    assert (len(data.train), len(data.query), len(data.gallery)) == (30, 3, 14)  # 15 - the empty cell
    assert data.num_train_pids == 3 and sorted({pid for _, pid, _ in data.train}) == [0, 1, 2]
    assert sorted({pid for _, pid, _ in data.query}) == [4, 5, 6]
    assert {cam for _, _, cam in data.query} == {0} and {cam for _, _, cam in data.gallery} == {1}
    path, pid, cam = data.gallery[0]
    assert Path(path).parent == cuhk03_root / "cuhk03" / "cuhk03_images" / kind
    assert Path(path).name == "2_001_2_06.png" and (pid, cam) == (4, 1)
    pixels = np.asarray(Image.open(path))
    assert np.array_equal(pixels, image_array(kind, 1, 0, 5))  # shape and orientation undone correctly


def test_images_are_extracted_once(cuhk03_root):
    build_dataset("cuhk03", root=cuhk03_root, image_type="labeled")
    mat = cuhk03_root / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    mat.write_bytes(b"gone")  # a second build must not read it again
    data = build_dataset("cuhk03", root=cuhk03_root, image_type="labeled")
    assert len(data.train) == 30
    assert not list((cuhk03_root / "cuhk03" / "cuhk03_images").glob(".*tmp*"))


def test_mat_that_is_not_hdf5_is_named(cuhk03_root):
    mat = cuhk03_root / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DatasetError, match=r"cuhk-03\.mat cannot be opened as MATLAB v7\.3 \(HDF5\)"):
        build_dataset("cuhk03_detected", root=cuhk03_root)
    assert not (cuhk03_root / "cuhk03" / "cuhk03_images" / "detected").exists()


def test_protocol_missing_keys_and_bad_indices(cuhk03_root):
    config = cuhk03_root / "cuhk03" / "cuhk03_new_protocol_config_labeled.mat"
    scipy.io.savemat(config, {"labels": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"config_labeled\.mat lacks filelist, camId, train_idx"):
        build_dataset("cuhk03_labeled", root=cuhk03_root)
    write_protocol(config)
    mat = scipy.io.loadmat(config)
    mat["query_idx"] = np.array([[0.0]])  # indices are 1-based: 0 is out of range
    scipy.io.savemat(config, {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(DatasetError, match=r"query_idx must hold 1-based indices into filelist \(1\.\.59\)"):
        build_dataset("cuhk03_labeled", root=cuhk03_root)


def test_missing_files_show_the_layout(tmp_path):
    (tmp_path / "cuhk03" / "cuhk03_release").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"(?s)cuhk03 lacks cuhk03_release/cuhk-03\.mat, cuhk03_new_protocol_"
                                           r"config_detected\.mat\. Expected layout:.*cuhk03_new_protocol_config"):
        build_dataset("cuhk03", root=tmp_path)
    with pytest.raises(DatasetError, match="image_type must be one of labeled, detected"):
        build_dataset("cuhk03", root=tmp_path, image_type="both")
