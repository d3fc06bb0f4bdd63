"""The custom dataset: one CSV, three CSVs, or a pid/camid folder tree."""
from __future__ import annotations

from pathlib import Path

import pytest
from data_replicas import write_image

from reidkit.data import build_dataset
from reidkit.errors import DatasetError

ROWS = [("train", "a/1.jpg", 10, 0), ("train", "a/2.jpg", 10, 1), ("train", "b/1.jpg", 30, 2),
        ("query", "q/1.jpg", 7, 0), ("gallery", "g/1.jpg", 7, 1), ("gallery", "g/2.jpg", 8, 1)]


def test_single_csv(tmp_path):
    for _, path, _, _ in ROWS:
        write_image(tmp_path / path)
    csv = tmp_path / "mine.csv"
    csv.write_text("path,pid,camid,split\n" + "".join(f"{p},{pid},{cam},{s}\n" for s, p, pid, cam in ROWS))
    data = build_dataset("custom", root=csv)
    assert [(pid, cam) for _, pid, cam in data.train] == [(0, 0), (0, 1), (1, 2)]
    assert data.query == [(str(tmp_path / "q/1.jpg"), 7, 0)]
    assert len(data.gallery) == 2 and data.num_train_cams == 3


def test_three_csvs_with_absolute_paths(tmp_path):
    images = tmp_path / "elsewhere"
    for subset in ("train", "query", "gallery"):
        lines = [f"{images / p},{pid},{cam}" for s, p, pid, cam in ROWS if s == subset]
        for line in lines:
            write_image(Path(line.split(",")[0]))
        (tmp_path / "data" / f"{subset}.csv").parent.mkdir(exist_ok=True)
        (tmp_path / "data" / f"{subset}.csv").write_text("path,pid,camid\n" + "\n".join(lines) + "\n")
    data = build_dataset("custom", root=tmp_path / "data")
    assert data.num_train_pids == 2 and data.gallery[1] == (str(images / "g/2.jpg"), 8, 1)


def test_folder_tree(tmp_path):
    for subset, path, pid, cam in ROWS:
        write_image(tmp_path / subset / str(pid) / str(cam) / Path(path).name)
    data = build_dataset("custom", root=tmp_path)
    assert sorted((pid, cam) for _, pid, cam in data.train) == [(0, 0), (0, 1), (1, 2)]
    assert sorted(pid for _, pid, _ in data.gallery) == [7, 8]


@pytest.mark.parametrize("content, message", [
    ("file,pid,camid,split\n", r"header \['file', 'pid', 'camid', 'split'\] lacks path"),
    ("path,pid,camid,split\nq/1.jpg,seven,0,query\n", r"mine\.csv:2: pid 'seven' is not an integer"),
    ("path,pid,camid,split\nq/9.jpg,7,0,query\n", r"mine\.csv:2: image .*q/9\.jpg does not exist"),
    ("path,pid,camid,split\nq/1.jpg,7,0,test\n", r"unknown split values \['test'\]; expected train, query, gallery"),
])
def test_bad_csv_names_file_line_and_value(tmp_path, content, message):
    write_image(tmp_path / "q/1.jpg")
    (tmp_path / "mine.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        build_dataset("custom", root=tmp_path / "mine.csv")


def test_unknown_layout_shows_the_three_layouts(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match=r"(?s)neither a CSV file nor.*Expected layout:.*header path,pid,camid,split"
                                           r".*<root>/train/<pid>/<camid>/<image>"):
        build_dataset("custom", root=tmp_path)
    write_image(tmp_path / "train" / "person1" / "0" / "x.jpg")
    for subset in ("query", "gallery"):
        (tmp_path / subset).mkdir()
    with pytest.raises(DatasetError, match=r"person1: person folder name 'person1' is not an integer"):
        build_dataset("custom", root=tmp_path)
