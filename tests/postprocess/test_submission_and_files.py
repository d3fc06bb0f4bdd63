"""Submission writer and feature files."""
import numpy as np
import pytest

from reidkit.errors import ReidkitError
from reidkit.features.files import load_features, save_features
from reidkit.postprocess.submission import rank_gallery, read_submission, write_submission


def test_submission_is_top100_one_based_in_query_order(tmp_path):
    rng = np.random.default_rng(1)
    dist = rng.random((3, 150))
    dist[0, 42] = -1.0  # best match of query 0 is gallery index 42 -> written as 43
    path = write_submission(tmp_path / "track2.txt", dist)
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 4  # one line per query, newline-terminated
    rows = read_submission(path, num_gallery=150)
    assert [len(r) for r in rows] == [100, 100, 100]
    assert rows[0][0] == 43
    for q in range(3):
        assert rows[q] == (np.argsort(dist[q])[:100] + 1).tolist()
    assert "  " not in path.read_text() and not lines[0].startswith(" ")


def test_rank_gallery_small_gallery_and_ties():
    dist = np.array([[0.5, 0.1, 0.5, 0.1]])
    assert rank_gallery(dist).tolist() == [[1, 3, 0, 2]]  # fewer than 100 items: all of them, ties by index
    with pytest.raises(ValueError, match="NaN"):
        rank_gallery(np.array([[np.nan, 1.0]]))


def test_read_submission_rejects_bad_files(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2 3\n4 0 5\n")
    with pytest.raises(ReidkitError, match=r"s.txt:2: gallery index 0 is outside"):
        read_submission(path, num_gallery=5)
    path.write_text("1 2 2\n")
    with pytest.raises(ReidkitError, match="listed twice"):
        read_submission(path)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_feature_file_roundtrip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    feats = {"query_f": rng.random((3, 8)), "gallery_f": rng.random((5, 8)),
             "query_label": [1, 2, 3], "query_cam": [0, 1, 2], "gallery_label": [1, 1, 2, 3, -1],
             "gallery_cam": [1, 2, 0, 0, 1], "gallery_area": [100, 20000, 3, 4, 5],
             "query_name": ["0001_c001_1.jpg", "b.jpg", "c.jpg"],
             "gallery_name": ["x.jpg", "long_name_1.jpg", "z.jpg", "w.jpg", "v.jpg"]}
    path = save_features(tmp_path / f"f{suffix}", feats)
    back = load_features(path)
    np.testing.assert_allclose(back["query_f"], feats["query_f"], rtol=1e-6)
    assert back["gallery_f"].shape == (5, 8)
    assert back["gallery_label"].tolist() == [1, 1, 2, 3, -1]
    assert back["query_name"].tolist() == feats["query_name"]
    assert back["gallery_name"].tolist() == feats["gallery_name"]
    assert back["gallery_area"].tolist() == [100, 20000, 3, 4, 5]


def test_feature_file_errors(tmp_path):
    with pytest.raises(ReidkitError, match=r"expected a name ending in \.mat or \.npz"):
        save_features(tmp_path / "f.pt", {"query_f": [[1.0]], "gallery_f": [[1.0]]})
    with pytest.raises(ReidkitError, match="missing gallery_f"):
        save_features(tmp_path / "f.npz", {"query_f": [[1.0]]})
    np.savez(tmp_path / "bad.npz", query_f=np.ones((2, 3)), gallery_f=np.ones((4, 3)), gallery_cam=np.ones(3))
    with pytest.raises(ReidkitError, match="gallery_cam has 3 entries, gallery_f has 4 rows"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(ReidkitError, match="does not exist"):
        load_features(tmp_path / "none.mat")
