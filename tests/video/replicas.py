"""Tiny replicas of the video dataset layouts (8x8 frames), written by the tests themselves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from reidkit.data.video import DUKEV_ATTRIBUTES, MARS_ATTRIBUTES, AttributeSchema


def touch_frame(path: Path, shade: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 30, 200)).save(path)


def labels_for(schema: AttributeSchema, seed: int) -> list[int]:
    """A valid, seed-dependent label for every attribute of the schema."""
    return [(seed + i) % n for i, (_, _, n) in enumerate(schema.attributes)]


def write_attribute_csv(path: Path, schema: AttributeSchema, rows: dict[tuple[int, int, int | str], list[int]],
                        encoding: str = "utf-8") -> None:
    header = ["person_id", "camera_id", "tracklets_id"] + [
        "动作" if name == "action" else name for _, name, _ in schema.attributes]  # MARS's CSV is GBK text
    lines = [",".join(header)] + [",".join(map(str, [*key, *values])) for key, values in rows.items()]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


# MARS: (person, camera, tracklet, frames) per tracklet, in table order.
MARS_TRAIN = [(1, 1, 1, 3), (1, 2, 2, 5), (2, 1, 3, 2), (2, 3, 4, 4)]
MARS_TEST = [(3, 1, 1, 3), (3, 2, 2, 4), (4, 1, 3, 2), (4, 4, 4, 3), (0, 5, 5, 2), (-1, 6, 6, 1)]
MARS_QUERY_IDX = [1, 3]  # 1-based rows of the test table


def mars_name(pid: int, cam: int, track: int, frame: int) -> str:
    person = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{person}C{cam}T{track:04d}F{frame:03d}.jpg"


def _mars_split(root: Path, home: str, tracks: list[tuple[int, int, int, int]]) -> tuple[list[str], np.ndarray]:
    names, rows = [], []
    for pid, cam, track, count in tracks:
        start = len(names) + 1
        for frame in range(1, count + 1):
            name = mars_name(pid, cam, track, frame)
            touch_frame(root / home / name[:4] / name)
            names.append(name)
        rows.append([start, len(names), pid, cam])
    return names, np.array(rows, dtype=np.int32)


def make_mars(root: Path, attribute_rows: dict | None = None) -> Path:
    """MARS layout under root/MARS; attribute rows for every training tracklet and the first query by default."""
    base = root / "MARS"
    info = base / "info"
    info.mkdir(parents=True)
    train_names, train_table = _mars_split(base, "bbox_train", MARS_TRAIN)
    test_names, test_table = _mars_split(base, "bbox_test", MARS_TEST)
    (info / "train_name.txt").write_text("\n".join(train_names) + "\n")
    (info / "test_name.txt").write_text("\n".join(test_names) + "\n")
    scipy.io.savemat(info / "tracks_train_info.mat", {"track_train_info": train_table})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": test_table})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([MARS_QUERY_IDX], dtype=np.int32)})
    if attribute_rows is None:
        tracks = MARS_TRAIN + MARS_TEST[:1]
        attribute_rows = {(p, c, t): labels_for(MARS_ATTRIBUTES, i) for i, (p, c, t, _) in enumerate(tracks)}
    write_attribute_csv(base / "mars_attributes.csv", MARS_ATTRIBUTES, attribute_rows, encoding="gbk")
    return base


# DukeMTMC-VideoReID: (subset, person folder, tracklet folder, camera, frame numbers)
DUKEV_TRACKLETS = [
    ("train", 1, "0001", 1, [12, 3, 7]), ("train", 1, "0002", 2, [5, 6]),
    ("train", 2, "0001", 3, [40, 41, 42, 43]), ("train", 2, "0005", 1, [9]),
    ("query", 3, "0010", 1, [1, 2]), ("query", 4, "0011", 2, [4, 5]),
    ("gallery", 3, "0010", 1, [1, 2]),        # the query tracklet again: removed from the gallery
    ("gallery", 3, "0012", 4, [8, 9, 10]),
    ("gallery", 4, "0010", 3, [1, 2]),        # same folder name as a query tracklet, other person: kept
    ("gallery", 4, "track_b", 5, [3]),        # folder name that is not an integer
]


def make_dukev(root: Path, attribute_rows: dict | None = None) -> Path:
    base = root / "DukeMTMC-VideoReID"
    for subset, pid, track, cam, frames in DUKEV_TRACKLETS:
        for frame in frames:
            touch_frame(base / subset / f"{pid:04d}" / track / f"{pid:04d}_C{cam}_F{frame:04d}_X{frame * 7}.jpg")
    if attribute_rows is None:
        train = [t for t in DUKEV_TRACKLETS if t[0] == "train"]
        attribute_rows = {(pid, cam, track): labels_for(DUKEV_ATTRIBUTES, i)
                          for i, (_, pid, track, cam, _) in enumerate(train)}
    write_attribute_csv(base / "duke_attributes.csv", DUKEV_ATTRIBUTES, attribute_rows)
    return base


def make_ilidsvid(root: Path, splits: list[list[int]] | None = None) -> Path:
    base = root / "ilids-vid"
    for cam in (1, 2):
        for person in range(1, 5):
            for frame in range(3 + person):
                touch_frame(base / "i-LIDS-VID" / "sequences" / f"cam{cam}" / f"person{person:03d}"
                            / f"cam{cam}_person{person:03d}_{frame * 10 + 5:05d}.png")
    split_dir = base / "train-test people splits"
    split_dir.mkdir(parents=True)
    scipy.io.savemat(split_dir / "train_test_splits_ilidsvid.mat",
                     {"ls_set": np.array(splits or [[1, 2, 3, 4], [3, 4, 1, 2]], dtype=np.float64)})
    return base


def make_prid2011(root: Path) -> Path:
    base = root / "prid2011"
    shots = base / "prid_2011" / "multi_shot"
    for cam, persons in (("cam_a", range(1, 6)), ("cam_b", range(1, 5))):  # person 5 only in cam_a, as in PRID
        for person in persons:
            for frame in range(1, 4):
                touch_frame(shots / cam / f"person_{person:04d}" / f"{frame:04d}.png")
    splits = [{"train": ["person_0003", "person_0004"], "test": ["person_0001", "person_0002"]},
              {"train": ["person_0001", "person_0002"], "test": ["person_0003", "person_0004"]}]
    (base / "splits_prid2011.json").write_text(json.dumps(splits))
    return base
