"""Fixtures: tiny replicas of the vehicle dataset layouts (a few 8x8 images each)."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


def touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 30, 200)).save(path)


def make_veri(root: Path) -> Path:
    base = root / "VeRi"
    train = ["0001_c001_00016450_0.jpg", "0001_c002_00016460_0.jpg", "0007_c001_00020000_0.jpg",
             "0007_c003_00020100_1.jpg", "0003_c020_00001000_0.jpg"]
    query = ["0002_c002_00030600_0.jpg", "0005_c003_00077350_0.jpg"]
    # name_test.txt is deliberately not sorted: it, not the folder listing, fixes the gallery order
    test = ["0005_c001_00077000_0.jpg", "0002_c001_00030000_0.jpg", "0002_c001_00030005_1.jpg",
            "0002_c002_00030605_1.jpg", "0005_c003_00077360_0.jpg"]
    for folder, names in (("image_train", train), ("image_query", query), ("image_test", test)):
        for name in names:
            touch_image(base / folder / name)
        (base / f"name_{folder.split('_')[1]}.txt").write_text("\n".join(names) + "\n")
    (base / "test_track.txt").write_text(
        "0002_c001 0002_c001_00030000_0.jpg 0002_c001_00030005_1.jpg \n"
        "0005_c001 0005_c001_00077000_0.jpg \n"
        "0002_c002 0002_c002_00030605_1.jpg \n"
        "0005_c003 0005_c003_00077360_0.jpg \n")
    return base


LABEL_XML = """<?xml version="1.0" encoding="gb2312"?>
<!-- 训练集标注 -->
<TrainingImages Version="1.0">
<Items number="{n}">
{items}
</Items>
</TrainingImages>
"""


def make_aicity(root: Path, pids=(1, 2, 3, 4, 5, 6), cams=(1, 2), per_cam=2) -> Path:
    base = root / "AIC20_track2" / "AIC20_ReID"
    items, k = [], 0
    for pid in pids:
        for cam in cams:
            for _ in range(per_cam):
                k += 1
                name = f"{k:06d}.jpg"
                touch_image(base / "image_train" / name)
                items.append(f'<Item imageName="{name}" vehicleID="{pid:04d}" cameraID="c{cam + 9:03d}" />')
    (base / "train_label.xml").write_bytes(LABEL_XML.format(n=len(items), items="\n".join(items)).encode("gb2312"))
    for folder, listing, count in (("image_query", "name_query.txt", 3), ("image_test", "name_test.txt", 5)):
        names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
        for name in names:
            touch_image(base / folder / name)
        (base / listing).write_text("\n".join(names) + "\n")
    (base / "test_track.txt").write_text("000001.jpg 000003.jpg \n000002.jpg 000004.jpg 000005.jpg \n")
    return base


def make_vehicleid(root: Path, test_ids=8, images_per_id=3) -> Path:
    base = root / "VehicleID_V1.0"
    lines = {"train_list.txt": [], "test_list_800.txt": []}
    k = 0
    for listing, pids in (("train_list.txt", range(100, 104)), ("test_list_800.txt", range(200, 200 + test_ids))):
        for pid in pids:
            for _ in range(images_per_id):
                k += 1
                touch_image(base / "image" / f"{k:07d}.jpg")
                lines[listing].append(f"{k:07d} {pid}")
    (base / "train_test_split").mkdir(parents=True)
    for listing, rows in lines.items():
        (base / "train_test_split" / listing).write_text("\n".join(rows) + "\n")
    return base


@pytest.fixture
def veri_root(tmp_path):
    make_veri(tmp_path)
    return tmp_path


@pytest.fixture
def aicity_root(tmp_path):
    make_aicity(tmp_path)
    return tmp_path


@pytest.fixture
def vehicleid_root(tmp_path):
    make_vehicleid(tmp_path)
    return tmp_path
