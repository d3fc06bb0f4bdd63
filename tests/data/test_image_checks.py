"""Unreadable or truncated images: an error naming the file, or, when asked, skipped and counted."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from data_replicas import write_image

from reidkit.data import ReidImageDataset, build_dataset, read_image
from reidkit.errors import DatasetError


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:200])
    return path


@pytest.fixture
def images(tmp_path):
    good = [write_image(tmp_path / f"{i}.jpg", color=(40 * i, 90, 30)) for i in range(3)]
    bad = truncate(write_image(tmp_path / "truncated.jpg", size=(128, 64)))
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    return good, bad, text


def test_read_image_names_the_file(images, tmp_path):
    good, bad, text = images
    assert read_image(good[0]).size == (32, 64) and read_image(good[0]).mode == "RGB"
    for path in (bad, text, tmp_path / "missing.jpg"):
        with pytest.raises(DatasetError, match=str(path)):
            read_image(path)


def test_dataset_raises_naming_the_file(images):
    good, bad, _ = images
    samples = [(str(good[0]), 1, 0), (str(bad), 1, 1)]
    dataset = ReidImageDataset(samples)
    assert dataset[0]["pid"] == 1
    with pytest.raises(DatasetError, match=r"truncated\.jpg cannot be read"):
        dataset[1]


def test_skip_replaces_with_same_identity_and_warns_once(images):
    good, bad, text = images
    samples = [(str(good[0]), 1, 0), (str(bad), 1, 1), (str(text), 1, 2), (str(good[1]), 2, 0)]
    dataset = ReidImageDataset(samples, skip_bad_images=True)
    with pytest.warns(UserWarning, match=r"skipping unreadable images, the first: image .*truncated\.jpg"):
        item = dataset[1]
    assert item["path"] == str(good[0]) and item["pid"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert dataset[2]["pid"] == 1
    assert dataset.skipped == {str(bad), str(text)}
    only_bad = ReidImageDataset([(str(bad), 5, 0)], skip_bad_images=True)
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="no readable image of identity 5"):
        only_bad[0]


def test_eager_verification_raises_or_skips_with_a_count(synthetic_market_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_market_root, root)
    train_dir = root / "Market-1501-v15.09.15" / "bounding_box_train"
    broken = sorted(train_dir.iterdir())[:2]
    for path in broken:
        truncate(path)
    assert len(build_dataset("market1501", root=root).train) == 92  # lazy by default: nothing decoded yet
    with pytest.raises(DatasetError, match=rf"train set: image .*{broken[0].name} cannot be read"):
        build_dataset("market1501", root=root, verify_images=True)
    with pytest.warns(UserWarning, match=rf"skipped 2 unreadable images, e.g. .*{broken[0].name}"):
        data = build_dataset("market1501", root=root, verify_images=True, skip_bad_images=True)
    assert len(data.train) == 90
