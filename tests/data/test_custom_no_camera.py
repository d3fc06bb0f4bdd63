"""Custom data without camera ids: the layouts, and the "self" protocol that removes only the query image itself
from its gallery, checked against a reference computation written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from data_replicas import write_image
from oracles.rank import reference_self_protocol

from reidkit.data import build_dataset
from reidkit.engine.evaluator import Features, evaluate_features
from reidkit.errors import DatasetError
from reidkit.metrics import MetricInputError, evaluate_rank


def _folder_without_cameras(root, query_in_gallery: bool = True):
    """train/<pid>/<image>, query/<pid>/<image>, gallery/<pid>/<image>; the gallery lists the query files too."""
    for pid in (1, 2, 3):
        for i in range(2):
            write_image(root / "train" / str(pid) / f"{i}.jpg", (pid * 40, i * 90, 10))
    for pid in (10, 11):
        write_image(root / "query" / str(pid) / "q.jpg", (pid, 20, 30))
        for i in range(2):
            write_image(root / "gallery" / str(pid) / f"{i}.jpg", (pid, 90 + i, 30))
    return root


def test_folder_layout_without_camera_folders(tmp_path):
    data = build_dataset("custom", root=_folder_without_cameras(tmp_path))
    assert not data.has_cameras and data.eval_protocol == "self"
    assert {cam for _, _, cam in data.train + data.query + data.gallery} == {0}
    assert data.num_train_pids == 3 and len(data.gallery) == 4


def test_csv_layouts_without_camid(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "q.jpg", "g.jpg"):
        write_image(tmp_path / name)
    rows = [("a.jpg", 1, "train"), ("b.jpg", 1, "train"), ("c.jpg", 2, "train"), ("q.jpg", 5, "query"),
            ("g.jpg", 5, "gallery")]
    (tmp_path / "one.csv").write_text("path,pid,split\n" + "".join(f"{p},{i},{s}\n" for p, i, s in rows))
    data = build_dataset("custom", root=tmp_path / "one.csv")
    assert not data.has_cameras and data.eval_protocol == "self" and data.query == [(str(tmp_path / "q.jpg"), 5, 0)]
    folder = tmp_path / "three"
    for subset in ("train", "query", "gallery"):
        lines = [f"../{p},{i}," for p, i, s in rows if s == subset]  # an empty camid cell is no camera too
        folder.mkdir(exist_ok=True)
        (folder / f"{subset}.csv").write_text("path,pid,camid\n" + "\n".join(lines) + "\n")
    assert build_dataset("custom", root=folder).eval_protocol == "self"


def test_some_cameras_missing_is_refused(tmp_path):
    root = _folder_without_cameras(tmp_path)
    write_image(root / "train" / "4" / "0" / "x.jpg")
    with pytest.raises(DatasetError, match=r"has no camera id but .*4/0/x\.jpg has one; give every image a camid"):
        build_dataset("custom", root=root)
    write_image(root / "train" / "1" / "0" / "y.jpg")
    with pytest.raises(DatasetError, match=r"train/1 holds both images .* and camera folders"):
        build_dataset("custom", root=root)


def test_protocol_choice(tmp_path):
    root = _folder_without_cameras(tmp_path / "nocam")
    with pytest.raises(DatasetError, match="protocol='market' removes the query's identity under its camera, but "
                                           "the data has no camera ids"):
        build_dataset("custom", root=root, protocol="market")
    with pytest.raises(DatasetError, match="protocol='duke': expected auto or one of"):
        build_dataset("custom", root=root, protocol="duke")
    # cameras, but every identity under one camera (tracking crops): market would drop every match
    one_camera = tmp_path / "onecam"
    for subset, pid, name in [("train", 1, "a"), ("train", 1, "b"), ("train", 2, "c"), ("query", 5, "q"),
                              ("gallery", 5, "g")]:
        write_image(one_camera / subset / str(pid) / "3" / f"{name}.jpg")
    with pytest.warns(UserWarning, match="market protocol would drop every match; evaluating with protocol 'self'"):
        assert build_dataset("custom", root=one_camera).eval_protocol == "self"
    assert build_dataset("custom", root=one_camera, protocol="market").eval_protocol == "market"


def test_self_protocol_matches_the_reference():
    rng = np.random.default_rng(0)
    # every test image is a query and a gallery item (query = gallery); 8 identities x 1..4 images
    g_pids = np.repeat(np.arange(8), rng.integers(1, 5, size=8))
    g_paths = [f"test/{pid}/{i}.jpg" for i, pid in enumerate(g_pids)]
    extra = [20, 21]  # gallery-only identities
    g_pids = np.concatenate([g_pids, extra])
    g_paths += ["test/20/x.jpg", "test/21/y.jpg"]
    q_pids, q_paths = g_pids[:-2], g_paths[:-2]
    feats = rng.normal(size=(len(g_pids), 8)) + g_pids[:, None] * 0.3
    dist = ((feats[:len(q_pids), None] - feats[None]) ** 2).sum(-1)
    zeros_q, zeros_g = np.zeros(len(q_pids), int), np.zeros(len(g_pids), int)
    cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, zeros_q, zeros_g, max_rank=10, protocol="self",
                                   q_images=q_paths, g_images=g_paths)
    ref_cmc, ref_map, ref_minp = reference_self_protocol(dist, q_pids, g_pids, q_paths, g_paths, 10)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
    assert mAP == pytest.approx(ref_map, abs=1e-12) and mINP == pytest.approx(ref_minp, abs=1e-12)
    # single-image identities have no match once their own image is gone: skipped, not counted as misses
    assert len(q_pids) > sum(np.sum(g_pids == p) > 1 for p in q_pids)
    # the same through the engine's evaluator, which passes the features' paths
    as_features = lambda rows: Features(torch.from_numpy(feats[rows]).float(), g_pids[rows], np.zeros(len(rows), int),
                                        [g_paths[r] for r in rows])
    result = evaluate_features(as_features(list(range(len(q_pids)))), as_features(list(range(len(g_pids)))),
                               max_rank=10, protocol="self")
    assert result.metrics["mAP"] == pytest.approx(ref_map, abs=1e-5)
    # the market protocol on the same camera-less data drops every match: refused, naming the way out
    with pytest.raises(MetricInputError, match="protocol='self' removes only the query image itself"):
        evaluate_rank(dist, q_pids, g_pids, zeros_q, zeros_g, max_rank=10)
    with pytest.raises(MetricInputError, match="pass q_images and g_images"):
        evaluate_rank(dist, q_pids, g_pids, zeros_q, zeros_g, max_rank=10, protocol="self")


def test_self_protocol_keeps_every_other_image_of_the_identity():
    # query 0 (pid 1) is gallery item 0; gallery items 1 and 2 are pid 1 under the same "camera" 0: both matches
    dist = np.array([[0.0, 0.3, 0.1, 0.2]])
    cmc, mAP, _ = evaluate_rank(dist, [1], [1, 1, 2, 1], [0], [0, 0, 0, 0], max_rank=3, protocol="self",
                                q_images=["a"], g_images=["a", "b", "c", "d"])
    # ranking without "a": c (0.1, wrong), d (0.2, match), b (0.3, match)
    np.testing.assert_allclose(cmc, [0, 1, 1])
    assert mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
