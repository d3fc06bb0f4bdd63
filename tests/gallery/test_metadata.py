"""Item metadata: the built-in file-name patterns of Market-1501, DukeMTMC-reID, MSMT17 and VeRi, custom
patterns, metadata CSVs (with or without a UTF-8 byte-order mark), times; every bad input one line."""
from __future__ import annotations

import pytest

from reidkit.errors import DatasetError
from reidkit.gallery.metadata import (PATTERNS, CsvMetadata, Metadata, NamePattern, format_time, metadata_source,
                                      parse_time)


@pytest.mark.parametrize("pattern, name, expected", [
    ("market1501", "0002_c1s1_000451_03.jpg", Metadata(camera=1, pid=2, tags={"seq": 1, "frame": 451, "idx": 3})),
    ("market1501", "-1_c3s2_064169_01.jpg", Metadata(camera=3, pid=-1, tags={"seq": 2, "frame": 64169, "idx": 1})),
    ("dukemtmcreid", "0001_c2_f0046182.jpg", Metadata(camera=2, pid=1, tags={"frame": 46182})),
    ("msmt17", "0000_000_01_0303morning_0015_0.jpg",
     Metadata(camera=1, pid=0, tags={"idx": 0, "day": 303, "period": "morning", "frame": 15, "n": 0})),
    ("veri", "0001_c001_00016450_0.jpg", Metadata(camera=1, pid=1, tags={"frame": 16450, "idx": 0})),
    ("{pid}_c{camid}s{seq}_{frame}_{idx}.jpg", "cam/0007_c6s3_000100_02.JPG",
     Metadata(camera=6, pid=7, tags={"seq": 3, "frame": 100, "idx": 2})),
    ("{camera}/{track}_{timestamp}.png", "4/12_1714557600.png", Metadata(camera=4, timestamp=1714557600.0, track=12)),
    ("*_c{cam}_*.jpg", "anything_c5_else.jpg", Metadata(camera=5)),
])
def test_patterns_parse_file_names(pattern, name, expected):
    assert NamePattern(pattern).lookup(name) == expected


def test_pattern_that_does_not_match_gives_no_metadata():
    market = NamePattern("market1501")
    assert market.lookup("Thumbs_c1.jpg") is None and market.lookup("0002_c1s1_000451_03.png") is None
    assert PATTERNS.names() == ["dukemtmcreid", "market1501", "msmt17", "veri"]


@pytest.mark.parametrize("pattern, message", [
    ("crops/*.jpg", r"--pattern 'crops/\*.jpg' has no \{field\}; expected e.g. .*market1501"),
    ("{pid}_{pid}.jpg", r"field \{pid\} appears twice"),
    ("{pid:x}.jpg", r"bad field \{pid:x\}; expected \{name\} \(an integer\) or \{name:s\}"),
    ("{pid.jpg", r"unbalanced brace in '\{pid.jpg'"),
])
def test_bad_patterns_get_one_line(pattern, message):
    with pytest.raises(DatasetError, match=message):
        NamePattern(pattern)


def test_csv_with_byte_order_mark_and_tags(tmp_path):
    (tmp_path / "meta.csv").write_bytes("\ufeffpath,camera,timestamp,track,pid,colour\n"
                                        "cam1/a.jpg,1,2024-05-01T10:00:00,7,,red\n"
                                        f"{tmp_path}/cam2/b.jpg,2,1714557600.5,,3,\n"
                                        "cam3/c.jpg,,2024-05-01 12:00:00+02:00,,,blue\n".encode("utf-8"))
    meta = CsvMetadata(tmp_path / "meta.csv", tmp_path)
    assert meta.lookup("cam1/a.jpg") == Metadata(camera=1, timestamp=1714557600.0, track=7, tags={"colour": "red"})
    assert meta.lookup("cam2/b.jpg") == Metadata(camera=2, timestamp=1714557600.5, pid=3)
    assert meta.lookup("cam3/c.jpg").timestamp == 1714557600.0 and meta.lookup("cam4/d.jpg") is None


@pytest.mark.parametrize("text, message", [
    ("name,camera\na.jpg,1\n", r"meta.csv: no path column \(header: name, camera\); expected a 'path' column"),
    ("path,camera\na.jpg,one\n", r"meta.csv:2: camera='one'; expected an integer"),
    ("path,timestamp\na.jpg,yesterday\n", r"meta.csv:2, timestamp: cannot read 'yesterday' as a time; expected"),
    ("path,camera\na.jpg,1\n,2\n", r"meta.csv:3: empty 'path'; expected an image path"),
    ("path,camera\na.jpg,1\nsub/../a.jpg,2\n", r"meta.csv:3: 'sub/../a.jpg' is listed twice \(first on line 2\)"),
])
def test_bad_csv_gets_one_line(tmp_path, text, message):
    (tmp_path / "meta.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        CsvMetadata(tmp_path / "meta.csv", tmp_path)


def test_path_column_may_be_called_file_and_cam_is_camera(tmp_path):
    (tmp_path / "meta.csv").write_text("File , Cam\na.jpg,1\n", encoding="utf-8")
    assert CsvMetadata(tmp_path / "meta.csv", tmp_path).lookup("a.jpg") == Metadata(camera=1)


def test_unreadable_csv_and_two_sources(tmp_path):
    with pytest.raises(DatasetError, match="cannot read --meta .*missing.csv"):
        CsvMetadata(tmp_path / "missing.csv", tmp_path)
    (tmp_path / "latin.csv").write_bytes("path,tag\ncaf\xe9.jpg,x\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="latin.csv is not UTF-8 text"):
        CsvMetadata(tmp_path / "latin.csv", tmp_path)
    with pytest.raises(DatasetError, match="--meta and --pattern both given"):
        metadata_source(tmp_path / "latin.csv", "market1501", tmp_path)
    assert metadata_source(None, None, tmp_path).lookup("a.jpg") is None


def test_times():
    assert parse_time("1714557600", "x") == 1714557600.0
    assert parse_time("2024-05-01T10:00:00Z", "x") == 1714557600.0
    assert format_time(1714557600.0) == "2024-05-01 10:00:00" and format_time(None) == "-"
    with pytest.raises(DatasetError, match="--since: cannot read 'noon' as a time"):
        parse_time("noon", "--since")
