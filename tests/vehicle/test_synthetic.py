"""Synthetic vehicles in the VeRi layout."""
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidkit.data.base import build_dataset
from reidkit.data.vehicle import synthetic as vehicle_synthetic
from reidkit.data.vehicle.synthetic import (COLOURS, ORIENTATIONS, TYPES, SyntheticVehicleConfig,
                                            make_synthetic_vehicles, read_meta)
from reidkit.errors import DatasetError

TINY = SyntheticVehicleConfig(num_train_ids=4, num_test_ids=5, num_cams=4, max_cams_per_id=3, min_frames=2,
                              max_frames=3, min_size=40, max_size=60, seed=7)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic_vehicles(tmp_path_factory.mktemp("syn") / "vehicles", TINY)


def read_veri(base):
    return build_dataset("veri776", base)


def test_registered_dataset_generates_on_first_use(tmp_path):
    options = {k: getattr(TINY, k) for k in TINY.__dataclass_fields__}
    dataset = build_dataset("synthetic_vehicles", tmp_path, **options)
    assert (tmp_path / "synthetic_vehicles" / "meta.json").is_file()
    assert dataset.num_train_pids == 4 and dataset.num_train_cams >= 2
    assert len(dataset.gallery_tracks) > 0
    assert build_dataset("synthetic_vehicles", tmp_path, **options).gallery == dataset.gallery


def test_layout_reads_as_veri(tiny):
    splits = read_veri(tiny)
    meta = read_meta(tiny)
    assert {pid for _, pid, _ in splits.train} == set(range(4))
    test_pids = {pid for _, pid, _ in splits.gallery}
    assert test_pids == set(range(5, 10)) and {pid for _, pid, _ in splits.query} <= test_pids
    assert len(meta) == len(splits.train) + len(splits.query) + len(splits.gallery)
    for path, pid, cam in splits.query + splits.gallery:
        m = meta[Path(path).name]
        assert (m["pid"], m["cam"]) == (pid, cam)
        assert Image.open(path).size == (m["width"], m["height"])
    assert {m["type"] for m in meta.values()} <= set(TYPES)
    assert {m["colour"] for m in meta.values()} <= set(COLOURS)
    assert {m["orientation"] for m in meta.values()} <= set(ORIENTATIONS)


def test_tracks_are_one_camera_passes(tiny):
    splits = read_veri(tiny)
    meta = read_meta(tiny)
    covered = np.concatenate(splits.gallery_tracks)
    assert sorted(covered.tolist()) == list(range(len(splits.gallery)))  # every gallery image in one track
    per_vehicle_cam = defaultdict(int)
    for track in splits.gallery_tracks:
        members = [meta[Path(splits.gallery[i][0]).name] for i in track]
        assert len({(m["pid"], m["cam"], m["orientation"]) for m in members}) == 1
        heights = [m["height"] for m in members]
        assert heights == sorted(heights) and heights[-1] > heights[0]  # the vehicle approaches
        per_vehicle_cam[members[0]["pid"], members[0]["cam"]] += 1
    assert set(per_vehicle_cam.values()) == {1}  # one track per camera per vehicle
    assert len({m["cam"] for m in meta.values()}) >= 3


def test_every_query_has_a_match_under_another_camera(tiny):
    splits = read_veri(tiny)
    gallery_names = {Path(p).name for p, _, _ in splits.gallery}
    for path, pid, cam in splits.query:
        assert Path(path).name not in gallery_names
        assert any(g_pid == pid and g_cam != cam for _, g_pid, g_cam in splits.gallery)


def test_seeded_and_guarded(tiny, tmp_path):
    again = make_synthetic_vehicles(tmp_path / "again", TINY)
    first = sorted(p.name for p in (tiny / "image_test").iterdir())
    assert sorted(p.name for p in (again / "image_test").iterdir()) == first
    assert (again / "image_test" / first[0]).read_bytes() == (tiny / "image_test" / first[0]).read_bytes()
    assert make_synthetic_vehicles(tiny, TINY) == tiny  # already there: reused
    with pytest.raises(DatasetError, match=r"other options \(.*seed 7 there, 1 here"):
        make_synthetic_vehicles(tiny, SyntheticVehicleConfig(seed=1))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="busy exists and was not written by reidkit's synthetic vehicle"):
        make_synthetic_vehicles(tmp_path / "busy", TINY)
    with pytest.raises(DatasetError, match="invalid num_cams=1"):
        SyntheticVehicleConfig(num_cams=1, max_cams_per_id=1)


def test_vehicles_of_another_generator_version_are_refused(tiny, monkeypatch):
    # A change to the drawing raises GENERATOR_VERSION; data cached by the old generator is not reused silently.
    monkeypatch.setattr(vehicle_synthetic, "GENERATOR_VERSION", vehicle_synthetic.GENERATOR_VERSION + 1)
    with pytest.raises(DatasetError, match=r"other options \(version 1 there, 2 here\)"):
        make_synthetic_vehicles(tiny, TINY)
