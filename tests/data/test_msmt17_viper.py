"""MSMT17 (list files) and VIPeR (cam_a/cam_b, seeded splits) on tiny replicas of their layouts."""
from __future__ import annotations

from pathlib import Path

import pytest
from data_replicas import write_image

from reidkit.data import build_dataset
from reidkit.errors import DatasetError

MSMT_LISTS = {
    "list_train.txt": ("train", ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303noon_0020_1.jpg 0",
                                 "0001/0001_000_15_0303afternoon_0001_0.jpg 1"]),
    "list_val.txt": ("train", ["0002/0002_000_03_0303morning_0100_0.jpg 2"]),
    "list_query.txt": ("test", ["0000/0000_000_02_0303morning_0001_0.jpg 0"]),
    "list_gallery.txt": ("test", ["0000/0000_003_07_0303noon_0002_0.jpg 0", "0001/0001_000_09_0303noon_0003_0.jpg 1"]),
}


def make_msmt(folder: Path, lists: dict = MSMT_LISTS) -> Path:
    for list_name, (image_dir, lines) in lists.items():
        for line in lines:
            write_image(folder / image_dir / line.split()[0])
        (folder / list_name).write_text("\n".join(lines) + "\n")
    return folder


def test_msmt17_lists_cameras_and_val(tmp_path):
    make_msmt(tmp_path / "MSMT17_V1")
    data = build_dataset("msmt17", root=tmp_path)
    assert [(pid, cam) for _, pid, cam in data.train] == [(0, 0), (0, 4), (1, 14)]
    assert [(pid, cam) for _, pid, cam in data.gallery] == [(0, 6), (1, 8)]
    assert data.query[0][0] == str(tmp_path / "MSMT17_V1" / "test" / "0000/0000_000_02_0303morning_0001_0.jpg")
    assert build_dataset("msmt17", root=tmp_path, include_val=True).num_train_pids == 3


def test_msmt17_bad_line_names_file_and_line(tmp_path):
    lists = dict(MSMT_LISTS, **{"list_query.txt": ("test", ["0000/0000_000_02_x_0001_0.jpg 0", "badline"])})
    make_msmt(tmp_path / "MSMT17_V2", {k: v for k, v in lists.items() if k != "list_query.txt"})
    (tmp_path / "MSMT17_V2" / "list_query.txt").write_text("\n".join(lists["list_query.txt"][1]) + "\n")
    with pytest.raises(DatasetError, match=r"list_query\.txt:2: cannot parse 'badline'; expected '<image path> <pid>'"):
        build_dataset("msmt17", root=tmp_path)


def test_msmt17_wrong_image_folder(tmp_path):
    folder = make_msmt(tmp_path / "MSMT17_V1")
    (folder / "test").rename(folder / "images")
    with pytest.raises(DatasetError, match=r"MSMT17_V1 has no test or mask_test_v2 image folder"):
        build_dataset("msmt17", root=tmp_path)


def make_viper(root: Path, people: int = 10) -> Path:
    folder = root / "VIPeR"
    for person in range(0, 2 * people, 2):  # VIPeR's person numbers are not contiguous
        write_image(folder / "cam_a" / f"{person:03d}_45.bmp")
        write_image(folder / "cam_b" / f"{person:03d}_90.bmp")
    return root


def test_viper_split_halves_views_and_seeding(tmp_path):
    root = make_viper(tmp_path)
    data = build_dataset("viper", root=root, split_id=3)
    assert (len(data.train), len(data.query), len(data.gallery)) == (10, 5, 5)
    assert data.num_train_pids == 5 and data.num_train_cams == 2
    assert all(cam == 0 and "cam_a" in path for path, _, cam in data.query)
    assert all(cam == 1 and "cam_b" in path for path, _, cam in data.gallery)
    test_pids = {pid for _, pid, _ in data.query}
    assert test_pids == {pid for _, pid, _ in data.gallery}
    train_people = {Path(path).name[:3] for path, _, _ in data.train}
    assert not train_people & {f"{pid:03d}" for pid in test_pids}
    again = build_dataset("viper", root=root, split_id=3)
    assert again.query == data.query
    splits = {tuple(sorted(pid for _, pid, _ in build_dataset("viper", root=root, split_id=s).query))
              for s in range(10)}
    assert len(splits) > 5  # the ten splits differ


def test_viper_errors(tmp_path):
    root = make_viper(tmp_path)
    with pytest.raises(DatasetError, match=r"split_id must be in 0\.\.9, got 10"):
        build_dataset("viper", root=root, split_id=10)
    (root / "VIPeR" / "cam_b" / "004_90.bmp").unlink()
    with pytest.raises(DatasetError, match=r"persons \[4\] have an image in only one of"):
        build_dataset("viper", root=root)
    with pytest.raises(DatasetError, match=r"(?s)VIPeR: no dataset folder.*cam_a/000_45\.bmp"):
        build_dataset("viper", root=tmp_path / "VIPeR" / "cam_a")
