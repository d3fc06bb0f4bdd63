"""`reidkit data from-mot`: MOTChallenge ground truth of tiny sequences written here -> custom-layout crops."""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mot_replicas import Track, people, write_sequence, write_tiny_run_config
from reidkit.cli import main
from reidkit.data import build_dataset
from reidkit.data.mot import MotOptions, convert_mot
from reidkit.errors import ConfigError, DatasetError

OPTIONS = MotOptions(min_height=20, min_visibility=0.3, every=2, min_images=4, max_images=4, test_ids=4,
                     query_per_id=1, seed=3)


def _mot_root(tmp_path: Path) -> Path:
    """MOT17-02 (with a DPM copy of it) and MOT17-04; five pedestrians each, plus boxes every filter drops."""
    root = tmp_path / "MOT17" / "train"
    dropped = [Track(6, (10, 10, 10), label=3, x0=100),  # a car
               Track(7, (10, 10, 10), conf=0, x0=100),  # ignored
               Track(8, (10, 10, 10), visibility=0.1, x0=100),  # hidden
               Track(9, (10, 10, 10), height=10, x0=100),  # too small
               Track(10, (10, 10, 10), frames=(1, 3, 5), x0=100),  # too short a track
               Track(11, (30, 30, 30), x0=110)]  # runs out of the frame: clipped, and dropped once outside
    write_sequence(root / "MOT17-02-FRCNN", people(5) + dropped)
    write_sequence(root / "MOT17-02-DPM", people(5) + dropped)
    write_sequence(root / "MOT17-04-FRCNN", people(5, first_color=5))
    return root


def _crops(folder: Path) -> dict[str, list[Path]]:
    return {subset: sorted((folder / subset).rglob("*.jpg")) for subset in ("train", "query", "gallery")}


def test_converts_filters_and_splits_by_identity(tmp_path):
    out = tmp_path / "reid"
    report = convert_mot(_mot_root(tmp_path), out, OPTIONS, progress=False)
    assert report.sequences == {"MOT17-02-FRCNN": 0, "MOT17-04-FRCNN": 1}
    assert report.skipped_copies == ["MOT17-02-DPM"]
    # 10 pedestrians + track 11 (clipped, still 20 px high and >= 1 px wide on frames 1..9): 11 identities
    assert sum(report.identities.values()) - report.identities["query"] == 11
    assert report.identities == {"train": 7, "query": 4, "gallery": 4}
    assert report.images == {"train": 7 * 4, "query": 4, "gallery": 4 * 3}
    assert report.dropped["of classes other than [1]"] == 10 and report.dropped["ignored (conf 0)"] == 10
    assert report.dropped["less visible than 0.3"] == 10 and report.dropped["lower than 20 px"] == 10
    crops = _crops(out)
    assert {k: len(v) for k, v in crops.items()} == report.images
    # layout <subset>/<pid>/<camid>/<sequence>_<frame>.jpg; frames kept: 1, 3, 5, 7, 9 thinned to 4
    frames = {int(p.stem.rsplit("_", 1)[1]) for paths in crops.values() for p in paths}
    assert frames <= {1, 3, 5, 7, 9}
    pids = {subset: {int(p.parts[-3]) for p in paths} for subset, paths in crops.items()}
    assert pids["query"] == pids["gallery"] and not pids["train"] & pids["query"]
    table = list(csv.DictReader((out / "identities.csv").open()))
    owner = {(r["sequence"], int(r["track"])): int(r["pid"]) for r in table}
    assert len(set(owner.values())) == len(owner) == 11  # same track ids in two sequences: distinct pids
    for path in crops["train"] + crops["query"]:
        assert int(path.parts[-2]) == report.sequences[path.stem.rsplit("_", 1)[0]]
    assert json.loads((out / "conversion.json").read_text())["cameras"] == report.sequences


def test_crops_are_the_boxes_clipped_to_the_frame(tmp_path):
    out = tmp_path / "reid"
    convert_mot(_mot_root(tmp_path), out, OPTIONS, progress=False)
    table = {int(r["pid"]): r for r in csv.DictReader((out / "identities.csv").open())}
    for path in sorted(out.rglob("*.jpg")):
        row = table[int(path.parts[-3])]
        frame = int(path.stem.rsplit("_", 1)[1])
        track = next(t for t in people(5, first_color=0 if row["sequence"] == "MOT17-02-FRCNN" else 5)
                     + [Track(11, (30, 30, 30), x0=110)] if t.track == int(row["track"]))
        left, top, width, height = track.box(frame)
        with Image.open(path) as crop:
            assert crop.size == (min(left + width, 128) - left, height)
            if track.track != 11:  # the others never overlap: the crop is the person's colour
                centre = np.asarray(crop.convert("RGB"))[height // 2, crop.size[0] // 2].astype(int)
                assert np.abs(centre - np.array(track.color)).max() < 30


def test_split_is_seeded(tmp_path):
    root = _mot_root(tmp_path)
    first = convert_mot(root, tmp_path / "a", OPTIONS, progress=False)
    again = convert_mot(root, tmp_path / "b", OPTIONS, progress=False)
    other = convert_mot(root, tmp_path / "c", MotOptions(**{**OPTIONS.__dict__, "seed": 4}), progress=False)
    names = {k: [p.relative_to(tmp_path / k) for p in sorted((tmp_path / k).rglob("*.jpg"))] for k in "abc"}
    assert names["a"] == names["b"] and names["a"] != names["c"]
    assert first.identities == again.identities == other.identities


def test_mot15_files_without_class_and_visibility(tmp_path):
    seq = write_sequence(tmp_path / "ADL-Rundle-6", people(4), columns=10, seqinfo=False)
    report = convert_mot(seq, tmp_path / "out", MotOptions(min_images=3, test_ids=1), progress=False)
    assert report.identities == {"train": 3, "query": 1, "gallery": 1}
    assert report.images["train"] == 30 and report.sequences == {"ADL-Rundle-6": 0}


def test_refusals_name_the_problem(tmp_path):
    root = _mot_root(tmp_path)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        convert_mot(root, out, OPTIONS, progress=False)
    assert (out / "mine.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken")]  # no temporary folder left
    with pytest.raises(ConfigError, match="min_images=1: expected >= query_per_id \\+ 1"):
        convert_mot(root, tmp_path / "x", MotOptions(min_images=1), progress=False)
    with pytest.raises(ConfigError, match=r"--camera names \['nope'\]"):
        convert_mot(root, tmp_path / "x", MotOptions(cameras={"nope": 3}), progress=False)
    bad = root / "MOT17-04-FRCNN" / "gt" / "gt.txt"
    bad.write_text(bad.read_text() + "12,3,4\n")
    with pytest.raises(DatasetError, match=r"gt\.txt:\d+: expected 'frame, id, left"):
        convert_mot(root, tmp_path / "x", OPTIONS, progress=False)
    with pytest.raises(DatasetError, match="no sequence under"):
        convert_mot(tmp_path / "taken", tmp_path / "x", OPTIONS, progress=False)
    assert not (tmp_path / "x").exists()


def test_camera_overrides(tmp_path):
    report = convert_mot(_mot_root(tmp_path), tmp_path / "out",
                         MotOptions(**{**OPTIONS.__dict__, "cameras": {"MOT17-04-FRCNN": 7}}), progress=False)
    assert report.sequences == {"MOT17-02-FRCNN": 0, "MOT17-04-FRCNN": 7}
    assert {p.parts[-2] for p in (tmp_path / "out").rglob("MOT17-04-FRCNN_*.jpg")} == {"7"}


def test_result_trains_with_reidkit_train_unchanged(tmp_path, capsys):
    root = _mot_root(tmp_path)
    out = tmp_path / "reid"
    assert main(["data", "from-mot", "--sequences", str(root), "--output", str(out), "--min-height", "20",
                 "--every", "2", "--min-images", "4", "--max-images", "4", "--test-ids", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "11 identities" in printed and "reidkit train" in printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the protocol note of one-camera identities, checked below
        data = build_dataset("custom", root=out)
    assert data.num_train_pids == 7 and data.eval_protocol == "self"
    config = write_tiny_run_config(tmp_path, {"name": "custom", "root": str(out)})
    with pytest.warns(UserWarning, match="evaluating with protocol 'self'"):
        assert main(["train", "--config", str(config)]) == 0
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert 0.0 < metrics["mAP"] <= 1.0 and 0.0 <= metrics["Rank-1"] <= 1.0
    # the report's ranked lists follow the protocol too (under the camera rule every match would be skipped)
    assert "best 1:" in (tmp_path / "run" / "report.html").read_text()
