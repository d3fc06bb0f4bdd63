"""`reidkit data check`: statistics of a dataset and every problem it names, with exit code 1 when fatal."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from reidkit.cli import main
from reidkit.data import build_dataset
from reidkit.data.check import check_dataset

_colors = itertools.count(1)


def image(path: Path, size: tuple[int, int] = (64, 32)) -> Path:
    """A solid image of a colour no other test image has (height, width), so no two files are identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = next(_colors)
    Image.new("RGB", (size[1], size[0]), (n % 251, (n * 7) % 253, (n * 13) % 255)).save(path)
    return path


def clean_layout(root: Path) -> Path:
    """4 training identities x 2 cameras x 2 images; 2 test identities (query camera 0, gallery camera 1) and a
    gallery-only identity; the gallery images are 128x64, the others 64x32."""
    for pid in range(1, 5):
        for cam in (0, 1):
            for i in range(2):
                image(root / "train" / str(pid) / str(cam) / f"{i}.jpg")
    for pid in (10, 11):
        image(root / "query" / str(pid) / "0" / "q.jpg")
        for i in range(2):
            image(root / "gallery" / str(pid) / "1" / f"{i}.jpg", (128, 64))
    image(root / "gallery" / "12" / "1" / "d.jpg", (128, 64))
    return root


def problems(report) -> dict[str, bool]:
    return {p.what: p.fatal for p in report.problems}


def test_clean_data_statistics_and_exit_code_0(tmp_path, capsys):
    root = clean_layout(tmp_path / "data")
    report = check_dataset(build_dataset("custom", root=root), batch_identities=2, progress=False)
    assert report.problems == [] and not report.fatal
    assert {k: (s.images, s.identities, s.cameras) for k, s in report.subsets.items()} == {
        "train": (16, 4, 2), "query": (2, 2, 1), "gallery": (5, 3, 1)}
    assert report.subsets["train"].per_identity == {"3-4": 4}
    assert report.subsets["gallery"].per_identity == {"1": 1, "2": 2}
    assert report.subsets["gallery"].sizes["width"] == [64, 64.0, 64]
    assert report.subsets["train"].sizes["common"] == [["32x64", 16]]
    json_path = tmp_path / "check.json"
    assert main(["data", "check", "--name", "custom", "--root", str(root), "--no-progress", "--json",
                 str(json_path), "train.batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "problems: none found" in out and "usable for training and testing" in out
    assert "3-4" in out and "32x64 / 32x64 / 32x64" in out
    saved = json.loads(json_path.read_text())
    assert saved[0]["fatal"] is False and saved[0]["subsets"]["train"]["identities"] == 4


def test_warnings_are_named_and_keep_exit_code_0(tmp_path, capsys):
    root = clean_layout(tmp_path / "data")
    image(root / "train" / "5" / "0" / "only.jpg")  # a single image (and a single camera)
    for i in range(3):
        image(root / "train" / "6" / "1" / f"{i}.jpg")  # a single camera
    image(root / "query" / "13" / "0" / "lost.jpg")  # identity not in the gallery
    image(root / "query" / "14" / "1" / "same.jpg")  # its gallery images are under its own camera only
    image(root / "gallery" / "14" / "1" / "a.jpg")
    shutil.copy(root / "train" / "1" / "0" / "0.jpg", root / "gallery" / "12" / "1" / "copy.jpg")
    (root / "train" / "2" / "0" / "1.jpg").write_bytes(b"not an image")
    report = check_dataset(build_dataset("custom", root=root), batch_identities=2, skip_bad_images=True,
                           progress=False)
    assert problems(report) == {
        "unreadable images in train": False,  # skipped (skip_bad_images)
        "training identities with a single image": False,
        "training identities seen by a single camera": False,
        "query identities missing from the gallery": False,
        "queries without a match under protocol 'market'": False,
        "files in both train and gallery": False,
    }
    details = {p.what: p for p in report.problems}
    assert details["training identities with a single image"].examples == (str(root / "train/5/0/only.jpg"),)
    assert details["training identities seen by a single camera"].examples == (
        str(root / "train/5/0/only.jpg"), str(root / "train/6/1/0.jpg"))
    assert details["query identities missing from the gallery"].examples == ("pid 13",)
    assert details["queries without a match under protocol 'market'"].examples[0].endswith("same.jpg")
    assert "copy.jpg" in details["files in both train and gallery"].examples[0]
    assert main(["data", "check", "--name", "custom", "--root", str(root), "--no-progress", "train.batch_size=8",
                 "data.options={skip_bad_images: true}"]) == 0
    out = capsys.readouterr().out
    assert "warning training identities with a single image: 1 of 6" in out


def _zero_byte_gallery(root: Path) -> None:
    (root / "gallery" / "10" / "1" / "0.jpg").write_bytes(b"")


def _unreadable_train(root: Path) -> None:
    (root / "train" / "3" / "1" / "0.jpg").write_bytes(b"GIF89a broken")


def _no_query_with_a_match(root: Path) -> None:
    for pid in (10, 11):
        shutil.move(root / "gallery" / str(pid) / "1", root / "gallery" / str(pid) / "0")


@pytest.mark.parametrize("damage, args, fatal", [
    (_zero_byte_gallery, [], "zero-byte images in gallery"),
    (_unreadable_train, [], "unreadable images in train"),
    (lambda root: None, ["train.batch_size=32"], "too few training identities"),
    (_no_query_with_a_match, ["data.options={protocol: market}"], "no query can be evaluated"),
    (lambda root: shutil.rmtree(root / "query"), [], "the dataset cannot be loaded"),
])
def test_fatal_problems_exit_with_1(tmp_path, capsys, damage, args, fatal):
    root = clean_layout(tmp_path / "data")
    damage(root)
    code = main(["data", "check", "--name", "custom", "--root", str(root), "--no-progress", "train.batch_size=8",
                 *args])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"FATAL   {fatal}" in out and "training or testing is impossible" in out


def test_camera_less_data_under_the_self_protocol(tmp_path):
    root = tmp_path / "data"
    for pid in range(1, 4):
        for i in range(2):
            image(root / "train" / str(pid) / f"{i}.jpg")
    for pid in (10, 11):
        for i in range(3):
            image(root / "gallery" / str(pid) / f"{i}.jpg")
    # the first gallery image of each test identity is also its query (same file: the protocol removes it)
    for pid in (10, 11):
        (root / "query" / str(pid)).mkdir(parents=True)
        shutil.copy(root / "gallery" / str(pid) / "0.jpg", root / "query" / str(pid) / "0.jpg")
    report = check_dataset(build_dataset("custom", root=root), batch_identities=2, progress=False)
    assert report.protocol == "self" and not report.has_cameras and report.subsets["train"].cameras is None
    # copies under another path are found (a query would meet its own copy at rank 1)
    assert problems(report) == {"files in both query and gallery": False}
    assert "no camera ids" in report.format()
