"""Market-1501 and DukeMTMC-reID on tiny replicas of their layouts, and the real mini Market when present."""
from __future__ import annotations

from pathlib import Path

import pytest
from data_replicas import make_bounding_box_layout

from reidkit.data import DATASETS, build_dataset
from reidkit.errors import DatasetError, RegistryError

MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077344_04.jpg",
                           "0011_c6s2_000100_01.jpg", "-1_c1s1_000001_00.jpg", "Thumbs.db"],
    "query": ["0003_c1s6_028546_01.jpg", "0005_c4s3_010000_01.jpg", "-1_c2s1_000002_00.jpg"],
    "bounding_box_test": ["0003_c2s3_071002_01.jpg", "0003_c1s6_028550_02.jpg", "0005_c5s1_020000_01.jpg",
                          "0000_c3s1_000100_01.jpg", "0000_c6s1_000200_02.jpg", "-1_c1s1_000003_00.jpg"],
}
SHARED_MINI = Path(__file__).resolve().parents[3] / "shared" / "data" / "market1501-mini"


def market_root(tmp_path: Path, layout: dict[str, list[str]] = MARKET) -> Path:
    make_bounding_box_layout(tmp_path / "Market-1501-v15.09.15", layout)
    return tmp_path


def pids(samples):
    return sorted(pid for _, pid, _ in samples)


def test_market_counts_relabelling_cameras_and_junk(tmp_path):
    data = build_dataset("market1501", root=market_root(tmp_path))
    assert len(data.train) == 4 and data.num_train_pids == 3 and data.num_train_cams == 4
    assert pids(data.train) == [0, 0, 1, 2]  # 0002, 0002, 0007, 0011 relabelled in order
    by_name = {Path(p).name: (pid, cam) for p, pid, cam in data.train}
    assert by_name["0011_c6s2_000100_01.jpg"] == (2, 5)  # camera c6 -> 5
    assert [(pid, cam) for _, pid, cam in data.query] == [(3, 0), (5, 3)]  # original pids, 0-based cameras
    # Distractors (0000) stay in the gallery; junk (-1) is dropped everywhere.
    assert pids(data.gallery) == [0, 0, 3, 3, 5]
    assert all(Path(p).is_file() for p, _, _ in data.train + data.query + data.gallery)
    assert "train" in data.summary() and "|      3 |" in data.summary()


def test_market_accepts_torchreid_nesting_and_the_folder_itself(tmp_path):
    make_bounding_box_layout(tmp_path / "market1501" / "Market-1501-v15.09.15", MARKET)
    assert len(build_dataset("market1501", root=tmp_path).train) == 4
    assert len(build_dataset("market1501", root=tmp_path / "market1501" / "Market-1501-v15.09.15").query) == 2


def test_duke_shares_the_parser(tmp_path):
    make_bounding_box_layout(tmp_path / "DukeMTMC-reID", {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c5_f0051341.jpg", "0008_c8_f0000001.jpg"],
        "query": ["0005_c2_f0046985.jpg"],
        "bounding_box_test": ["0005_c3_f0047240.jpg", "0009_c7_f0100000.jpg"]})
    data = build_dataset("dukemtmcreid", root=tmp_path)
    assert [(pid, cam) for _, pid, cam in data.train] == [(0, 1), (0, 4), (1, 7)]
    assert data.num_train_cams == 3 and pids(data.gallery) == [5, 9]


def test_missing_dataset_folder_names_path_and_layout(tmp_path):
    with pytest.raises(DatasetError) as info:
        build_dataset("market1501", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value) and "bounding_box_train" in str(info.value)
    (tmp_path / "Market-1501").mkdir()  # misnamed
    with pytest.raises(DatasetError, match=r"(?s)no dataset folder under .* holds Market-1501\)\. Expected layout:"
                                           r".*Market-1501-v15\.09\.15/bounding_box_test/"):
        build_dataset("market1501", root=tmp_path)


def test_incomplete_folder_names_what_is_missing(tmp_path):
    layout = {k: v for k, v in MARKET.items() if k != "query"}
    with pytest.raises(DatasetError, match=r"Market-1501-v15\.09\.15 lacks query\. Expected layout"):
        build_dataset("market1501", root=market_root(tmp_path, layout))


def test_misnamed_image_is_named(tmp_path):
    layout = dict(MARKET, query=["0003_c1s6_028546_01.jpg", "person3_cam1.jpg"])
    with pytest.raises(DatasetError, match=r"person3_cam1\.jpg: cannot read person and camera.*0002_c1s1_000451_03"):
        build_dataset("market1501", root=market_root(tmp_path, layout))


def test_query_without_gallery_identity_is_an_error(tmp_path):
    layout = dict(MARKET, query=["0042_c1s6_028546_01.jpg"])
    with pytest.raises(DatasetError, match="no query identity appears in the gallery"):
        build_dataset("market1501", root=market_root(tmp_path, layout))


def test_empty_subset_is_an_error(tmp_path):
    layout = dict(MARKET, bounding_box_train=["-1_c1s1_000001_00.jpg"])
    with pytest.raises(DatasetError, match="train set under .* holds no images"):
        build_dataset("market1501", root=market_root(tmp_path, layout))


def test_unknown_dataset_name_suggests_the_registered_one():
    with pytest.raises(RegistryError, match="Did you mean 'market1501'"):
        build_dataset("market1510", root=".")
    assert {"market1501", "dukemtmcreid", "cuhk03", "msmt17", "viper", "custom"} <= set(DATASETS.names())


def test_synthetic_fixture_reads_as_market(synthetic_market_root):
    data = build_dataset("market1501", root=synthetic_market_root)
    assert data.num_train_pids == 12 and data.num_train_cams == 4
    assert 0 in pids(data.gallery) and -1 not in pids(data.gallery)
    assert {pid for _, pid, _ in data.query} <= {pid for _, pid, _ in data.gallery}


@pytest.mark.skipif(not SHARED_MINI.is_dir(), reason="needs ../shared/data/market1501-mini (the shared real data)")
def test_shared_market1501_mini_counts():
    data = build_dataset("market1501", root=SHARED_MINI)
    assert (data.num_train_pids, len(data.train), len(data.query), len(data.gallery)) == (376, 6338, 1425, 5173)
    assert data.num_train_cams == 6 and sorted({pid for _, pid, _ in data.train})[-1] == 375
