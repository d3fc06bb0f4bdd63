"""Video dataset readers on tiny replicas of each layout (MARS .mat tables written with scipy.io.savemat)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reidkit.data.base import build_dataset
from reidkit.data.video import DUKEV_ATTRIBUTES, MARS_ATTRIBUTES, read_attribute_csv
from reidkit.errors import ConfigError, DatasetError
from reidkit.metrics.attributes import attribute_report, majority_accuracy

from .replicas import (MARS_TRAIN, labels_for, make_dukev, make_ilidsvid, make_mars, make_prid2011,
                       write_attribute_csv)


def names(tracklet) -> list[str]:
    return [Path(p).name for p in tracklet[0]]


# ---------------------------------------------------------------- MARS
def test_mars_tracklets_from_the_track_tables(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    assert len(data.train) == 4 and data.num_train_pids == 2
    assert [pid for _, pid, _ in data.train] == [0, 0, 1, 1]  # relabelled
    assert [camid for _, _, camid in data.train] == [0, 1, 0, 2]  # 0-based
    assert names(data.train[1]) == [f"0001C2T0002F00{i}.jpg" for i in range(1, 6)]
    assert data.train[0][0][0].endswith("bbox_train/0001/0001C1T0001F001.jpg")
    # query_IDX = rows 1 and 3 of the test table; the gallery is the rest, junk dropped, distractor kept
    assert [(pid, camid) for _, pid, camid in data.query] == [(3, 0), (4, 0)]
    assert [(pid, camid) for _, pid, camid in data.gallery] == [(3, 1), (4, 3), (0, 4)]
    assert data.gallery[0][0][0].endswith("bbox_test/0003/0003C2T0002F001.jpg")
    assert "tracklets" in data.summary() and "41" in data.summary()


def test_mars_attributes_joined_per_tracklet(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    assert data.attribute_schema is MARS_ATTRIBUTES
    assert data.attributes["train"] == [tuple(labels_for(MARS_ATTRIBUTES, i)) for i in range(4)]
    assert data.attributes["query"] == [tuple(labels_for(MARS_ATTRIBUTES, 4)), None]  # test rows are optional
    codes = MARS_ATTRIBUTES.one_hot(data.attributes["train"][1])
    assert codes["irrelevant"].shape == (25,) and codes["relevant"].shape == (41,)
    assert codes["irrelevant"].sum() == 9 and codes["relevant"].sum() == 12  # one class per attribute
    assert codes["irrelevant"][1] == 1  # label 1 of "action" (5 classes) is position 1


def test_mars_training_tracklet_without_attribute_row_is_named(tmp_path):
    rows = {(p, c, t): labels_for(MARS_ATTRIBUTES, 0) for p, c, t, _ in MARS_TRAIN[:3]}
    make_mars(tmp_path, attribute_rows=rows)
    with pytest.raises(DatasetError, match=r"person 2, camera 3, tracklet 4\) has no row in .*mars_attributes.csv"):
        build_dataset("mars", root=tmp_path)


def test_mars_without_attributes(tmp_path):
    base = make_mars(tmp_path)
    (base / "mars_attributes.csv").unlink()
    with pytest.raises(DatasetError, match="mars_attributes.csv"):
        build_dataset("mars", root=tmp_path)
    data = build_dataset("mars", root=tmp_path, attributes=False)
    assert data.attribute_schema is None and data.attributes["train"] == [None] * 4


def test_mars_min_seq_len_drops_short_tracklets(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path, min_seq_len=3)
    assert [len(f) for f, _, _ in data.train] == [3, 5, 4]
    assert len(data.attributes["train"]) == 3


def test_mars_bad_tables_are_reported(tmp_path):
    base = make_mars(tmp_path)
    scipy.io.savemat(base / "info" / "query_IDX.mat", {"query_IDX": np.array([[1, 9]])})
    with pytest.raises(DatasetError, match=r"query_IDX.mat: row 9 is outside the 6 rows"):
        build_dataset("mars", root=tmp_path)
    scipy.io.savemat(base / "info" / "query_IDX.mat", {"wrong_key": np.array([[1]])})
    with pytest.raises(DatasetError, match=r"no variable 'query_IDX' \(found \['wrong_key'\]\)"):
        build_dataset("mars", root=tmp_path)
    scipy.io.savemat(base / "info" / "query_IDX.mat", {"query_IDX": np.array([[1, 3]])})
    table = scipy.io.loadmat(base / "info" / "tracks_train_info.mat")["track_train_info"]
    table[0, 2] = 2  # the row now claims person 2 for person 1's frames
    scipy.io.savemat(base / "info" / "tracks_train_info.mat", {"track_train_info": table})
    with pytest.raises(DatasetError, match="belongs to person 1, camera 1, but its track-table row says person 2"):
        build_dataset("mars", root=tmp_path)
    table[0, 2], table[0, 1] = 1, 99
    scipy.io.savemat(base / "info" / "tracks_train_info.mat", {"track_train_info": table})
    with pytest.raises(DatasetError, match=r"row 1: frames 1..99 are outside 1..14"):
        build_dataset("mars", root=tmp_path)


def test_mars_missing_info_file(tmp_path):
    base = make_mars(tmp_path)
    (base / "info" / "tracks_test_info.mat").unlink()
    with pytest.raises(DatasetError, match="lacks tracks_test_info.mat"):
        build_dataset("mars", root=tmp_path)


def test_attribute_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "a.csv"
    bad = labels_for(MARS_ATTRIBUTES, 0)
    bad[1] = 6  # angle has 6 classes: 0..5
    write_attribute_csv(path, MARS_ATTRIBUTES, {(1, 1, 1): bad})
    with pytest.raises(DatasetError, match=r"a.csv line 2: attribute 'angle' = 6, expected a class index in 0..5"):
        read_attribute_csv(path, MARS_ATTRIBUTES)
    write_attribute_csv(path, MARS_ATTRIBUTES, {(1, 1, 1): labels_for(MARS_ATTRIBUTES, 0)[:-1]})
    with pytest.raises(DatasetError, match="line 2: 23 columns, expected 3 \\+ 21"):
        read_attribute_csv(path, MARS_ATTRIBUTES)
    path.write_text("h\n1,1,x7," + ",".join("a" * 21) + "\n")
    with pytest.raises(DatasetError, match="must be integers"):
        read_attribute_csv(path, MARS_ATTRIBUTES)


def test_attribute_csv_conflicting_duplicate(tmp_path):
    path = tmp_path / "a.csv"
    row = ",".join(map(str, labels_for(MARS_ATTRIBUTES, 0)))
    other = ",".join(map(str, labels_for(MARS_ATTRIBUTES, 1)))
    path.write_text(f"h\n1,1,7,{row}\n1,1,0007,{row}\n")
    assert len(read_attribute_csv(path, MARS_ATTRIBUTES)) == 1  # same tracklet, same labels
    path.write_text(f"h\n1,1,7,{row}\n1,1,7,{other}\n")
    with pytest.raises(DatasetError, match="line 3: .*appears twice with different attributes"):
        read_attribute_csv(path, MARS_ATTRIBUTES)


# ---------------------------------------------------------------- DukeMTMC-VideoReID
def test_dukev_layout_and_gallery_deduplication(tmp_path):
    make_dukev(tmp_path)
    data = build_dataset("dukemtmcvidreid", root=tmp_path)
    assert len(data.train) == 4 and data.num_train_pids == 2
    assert names(data.train[0]) == ["0001_C1_F0003_X21.jpg", "0001_C1_F0007_X49.jpg", "0001_C1_F0012_X84.jpg"]
    assert [(pid, camid) for _, pid, camid in data.query] == [(3, 0), (4, 1)]
    # (3, "0010") is a query tracklet: removed; (4, "0010") shares only the folder name: kept
    gallery = sorted((pid, camid, Path(f[0]).parent.name) for f, pid, camid in data.gallery)
    assert gallery == [(3, 3, "0012"), (4, 2, "0010"), (4, 4, "track_b")]
    assert data.attribute_schema is DUKEV_ATTRIBUTES
    assert data.attributes["train"] == [tuple(labels_for(DUKEV_ATTRIBUTES, i)) for i in range(4)]
    assert DUKEV_ATTRIBUTES.group_dims == {"irrelevant": 25, "relevant": 33}


def test_dukev_missing_training_attribute_row(tmp_path):
    make_dukev(tmp_path, attribute_rows={(1, 1, "0001"): labels_for(DUKEV_ATTRIBUTES, 0)})
    with pytest.raises(DatasetError, match=r"person 1, camera 2, tracklet 2\) has no row in .*duke_attributes.csv"):
        build_dataset("dukemtmcvidreid", root=tmp_path)
    assert build_dataset("dukemtmcvidreid", root=tmp_path, attributes=False).attribute_schema is None


def test_dukev_mixed_tracklet_folder(tmp_path):
    base = make_dukev(tmp_path)
    (base / "train" / "0001" / "0001" / "0001_C1_F0012_X84.jpg").rename(
        base / "train" / "0001" / "0001" / "0002_C1_F0012_X84.jpg")
    with pytest.raises(DatasetError, match=r"mixes persons \[1, 2\]"):
        build_dataset("dukemtmcvidreid", root=tmp_path)


# ---------------------------------------------------------------- iLIDS-VID, PRID2011
def test_ilidsvid_split(tmp_path):
    make_ilidsvid(tmp_path)
    data = build_dataset("ilidsvid", root=tmp_path)
    assert data.attribute_schema is None
    # split 0: ls_set row [1, 2, 3, 4]: first half (persons 1, 2) test
    assert sorted({pid for _, pid, _ in data.query}) == [1, 2]
    assert [camid for _, _, camid in data.query] == [0, 0] and [camid for _, _, camid in data.gallery] == [1, 1]
    assert len(data.train) == 4 and data.num_train_cams == 2
    assert names(data.query[0]) == [f"cam1_person001_{i * 10 + 5:05d}.png" for i in range(4)]
    other = build_dataset("ilidsvid", root=tmp_path, split_id=1)
    assert sorted({pid for _, pid, _ in other.query}) == [3, 4]
    with pytest.raises(ConfigError, match=r"split_id must be an int in 0..1"):
        build_dataset("ilidsvid", root=tmp_path, split_id=2)


def test_ilidsvid_bad_split_file(tmp_path):
    make_ilidsvid(tmp_path, splits=[[1, 1, 2, 3]])
    with pytest.raises(DatasetError, match="not a permutation of 1..4"):
        build_dataset("ilidsvid", root=tmp_path)


def test_prid2011_split(tmp_path):
    base = make_prid2011(tmp_path)
    data = build_dataset("prid2011", root=tmp_path, split_id=1)
    assert sorted({pid for _, pid, _ in data.query}) == [3, 4]
    assert [len(f) for f, _, _ in data.gallery] == [3, 3]
    assert len(data.train) == 4
    (base / "splits_prid2011.json").write_text(json.dumps([{"train": ["person_0005"], "test": ["person_0001"]}]))
    with pytest.raises(DatasetError, match="cam_b/person_0005 does not exist"):
        build_dataset("prid2011", root=tmp_path)
    (base / "splits_prid2011.json").write_text("{}")
    with pytest.raises(DatasetError, match="expected a non-empty list"):
        build_dataset("prid2011", root=tmp_path)


def test_unknown_root_lists_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="Expected layout"):
        build_dataset("mars", root=tmp_path)


def test_attribute_report_and_majority_baseline():
    labels = np.array([labels_for(MARS_ATTRIBUTES, i) for i in range(4)])
    train = np.array([labels_for(MARS_ATTRIBUTES, 0)] * 3 + [labels_for(MARS_ATTRIBUTES, 1)])
    predicted = labels.copy()
    predicted[:2, 0] = (predicted[:2, 0] + 1) % 5  # two of four "action" predictions wrong
    report = attribute_report(MARS_ATTRIBUTES, predicted, labels, train)
    assert report["action"]["accuracy"] == 0.5 and report["angle"]["accuracy"] == 1.0
    # training majority of "action" is class 0 (3 of 4); the test labels hold class 0 once in 4
    assert report["action"]["majority"] == 0.25 and report["action"]["classes"] == 4
    assert majority_accuracy(np.array([[1, 0], [1, 1], [2, 1]])).tolist() == pytest.approx([2 / 3, 2 / 3])
