"""MARS (Zheng et al. 2016): tracklets from the info/ tables, attributes from mars_attributes.csv.

    <root>/bbox_train/0001/0001C1T0001F001.jpg ...     frames, in folders named by the first 4 characters
    <root>/bbox_test/...
    <root>/info/train_name.txt, test_name.txt           one frame name per line
    <root>/info/tracks_train_info.mat, tracks_test_info.mat   N x 4: start (1-based), end (inclusive), pid, camera
    <root>/info/query_IDX.mat                           1-based rows of the test table; the gallery is the rest
    <root>/mars_attributes.csv                          (GBK) person_id, camera_id, tracklets_id, 21 attributes

Frame name 0001C1T0001F001.jpg: person [0:4], camera [5], tracklet T + 4 digits, frame F + 3 digits.
Person -1 (junk) is dropped; person 0 (distractors) stays in the gallery only.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.io

from reidkit.data.base import DATASETS, find_dataset_dir, read_text_file
from reidkit.data.video.attributes import (MARS_ATTRIBUTES, Labels, TrackletKey, lookup_attributes,
                                           read_attribute_csv, tracklet_key)
from reidkit.data.video.base import Tracklet, VideoDataset
from reidkit.errors import DatasetError

FRAME_NAME = re.compile(r"^(.{4})C(\d)T(\d{4})F(\d{3,})\.\w+$")
JUNK_PID = -1
DISTRACTOR_PID = 0
ATTRIBUTE_FILE = "mars_attributes.csv"
INFO_FILES = ("train_name.txt", "test_name.txt", "tracks_train_info.mat", "tracks_test_info.mat", "query_IDX.mat")
LAYOUT = """  <root>/bbox_train/0001/0001C1T0001F001.jpg, <root>/bbox_test/...
  <root>/info/{train_name,test_name}.txt, tracks_{train,test}_info.mat, query_IDX.mat
  <root>/mars_attributes.csv (with attributes; attributes=false reads MARS without it)"""


def read_names(path: Path) -> list[str]:
    return [line.strip() for line in read_text_file(path, "name list").splitlines() if line.strip()]


def load_mat_array(path: Path, key: str) -> np.ndarray:
    """The integer array `key` of a MATLAB file, or DatasetError naming the file and the keys it holds."""
    try:
        content = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path} cannot be read as a MATLAB .mat file ({exc})") from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DatasetError(f"{path} has no variable {key!r} (found {found})")
    array = np.asarray(content[key])
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: {key!r} holds {array.dtype} values, expected integers")
    return array.astype(np.int64)


def track_table(path: Path, key: str, num_names: int) -> np.ndarray:
    """The N x 4 track table, every row's frame range checked against the name list."""
    table = load_mat_array(path, key)
    if table.ndim != 2 or table.shape[1] != 4:
        raise DatasetError(f"{path}: {key!r} has shape {table.shape}, expected N x 4 (start, end, pid, camera)")
    for row, (start, end, _, camera) in enumerate(table, start=1):
        if not 1 <= start <= end <= num_names:
            raise DatasetError(f"{path} row {row}: frames {start}..{end} are outside 1..{num_names} "
                               f"(the length of the matching name list)")
        if camera < 1:
            raise DatasetError(f"{path} row {row}: camera {camera}, expected 1-based camera numbers")
    return table


class Mars(VideoDataset):
    """MARS; `attributes=False` reads it without mars_attributes.csv (for models without attribute heads)."""

    display_name = "MARS"

    def __init__(self, root: str | os.PathLike, *, attributes: bool = True, min_seq_len: int = 0,
                 **options: object) -> None:
        required = ("info", "bbox_train", "bbox_test") + ((ATTRIBUTE_FILE,) if attributes else ())
        folder = find_dataset_dir(root, ("", "mars", "MARS"), required, self.display_name, LAYOUT)
        info = folder / "info"
        missing = [name for name in INFO_FILES if not (info / name).is_file()]
        if missing:
            raise DatasetError(f"{self.display_name}: {info} lacks {', '.join(missing)}. Expected layout:\n{LAYOUT}")
        table = read_attribute_csv(folder / ATTRIBUTE_FILE, MARS_ATTRIBUTES, "gbk") if attributes else None
        subsets, labels = self._read_subsets(folder, table, min_seq_len)
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], name=self.display_name,
                         root=folder, attribute_schema=MARS_ATTRIBUTES if attributes else None,
                         attributes=labels, **options)  # type: ignore[arg-type]

    def _read_subsets(self, folder: Path, table: dict[TrackletKey, Labels] | None,
                      min_seq_len: int) -> tuple[dict[str, list[Tracklet]], dict[str, list[Labels | None]]]:
        info = folder / "info"
        train_names, test_names = read_names(info / "train_name.txt"), read_names(info / "test_name.txt")
        train_table = track_table(info / "tracks_train_info.mat", "track_train_info", len(train_names))
        test_table = track_table(info / "tracks_test_info.mat", "track_test_info", len(test_names))
        query_rows = load_mat_array(info / "query_IDX.mat", "query_IDX").reshape(-1) - 1
        bad = query_rows[(query_rows < 0) | (query_rows >= len(test_table))]
        if bad.size:
            raise DatasetError(f"{info / 'query_IDX.mat'}: row {bad[0] + 1} is outside the {len(test_table)} rows "
                               "of tracks_test_info.mat (query_IDX is 1-based)")
        is_query = np.zeros(len(test_table), dtype=bool)
        is_query[query_rows] = True
        parts = {
            "train": (train_names, train_table, "bbox_train"),
            "query": (test_names, test_table[is_query], "bbox_test"),
            "gallery": (test_names, test_table[~is_query], "bbox_test"),
        }
        subsets: dict[str, list[Tracklet]] = {}
        labels: dict[str, list[Labels | None]] = {}
        for subset, (names, rows, home) in parts.items():
            tracklets = self._tracklets(names, rows, folder / home, keep_distractors=subset == "gallery")
            tracklets = [t for t in tracklets if len(t[0][0]) >= min_seq_len]
            subsets[subset] = [t[0] for t in tracklets]
            labels[subset] = lookup_attributes(table, [key for _, key in tracklets], required=subset == "train",
                                               source=folder / ATTRIBUTE_FILE, dataset=self.display_name)
        return subsets, labels

    def _tracklets(self, names: list[str], rows: np.ndarray, home: Path,
                   keep_distractors: bool) -> list[tuple[Tracklet, TrackletKey]]:
        """(tracklet, attribute key) of every kept row of a track table."""
        tracklets = []
        for start, end, pid, camera in rows:
            if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
                continue
            frames = names[start - 1:end]
            tracklet_ids = {self._check_frame(name, pid, camera) for name in frames}
            if len(tracklet_ids) != 1:
                raise DatasetError(f"{self.display_name}: frames {start}..{end} ({frames[0]} .. {frames[-1]}) "
                                   f"span several tracklets {sorted(tracklet_ids)}; expected one per table row")
            paths = tuple(str(home / name[:4] / name) for name in frames)
            tracklets.append(((paths, int(pid), int(camera) - 1), tracklet_key(pid, camera, tracklet_ids.pop())))
        return tracklets

    def _check_frame(self, name: str, pid: int, camera: int) -> str:
        """The frame's tracklet id, once its name agrees with its table row (person, camera)."""
        match = FRAME_NAME.match(name)
        if match is None:
            raise DatasetError(f"{self.display_name}: frame name {name!r} does not follow 0001C1T0001F001.jpg "
                               "(person, C + camera, T + tracklet, F + frame)")
        if int(match[1]) != pid or int(match[2]) != camera:
            raise DatasetError(f"{self.display_name}: frame {name} belongs to person {int(match[1])}, camera "
                               f"{match[2]}, but its track-table row says person {pid}, camera {camera}")
        return match[3]


DATASETS.register("mars")(Mars)
