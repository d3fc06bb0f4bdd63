"""reidkit.data.synthetic: the drawing API, the Market writer and its cache, and learnable-but-not-trivial."""
from __future__ import annotations

import numpy as np
import pytest
from oracles.rank import mean_average_precision
from PIL import Image

from reidkit.data import build_dataset
from reidkit.data.synthetic import (MANIFEST, MARKET_FOLDER, VIEWS, Camera, Identity, describe, draw_person,
                                    generate_market_dataset)
from reidkit.errors import ConfigError, DatasetError


def test_draw_person_api():
    rng = np.random.default_rng(0)
    who, camera = Identity.sample(rng), Camera.sample(0, rng)
    image = draw_person(who, camera, np.random.default_rng(1), size=(96, 48))
    assert isinstance(image, Image.Image) and image.size == (48, 96) and image.mode == "RGB"
    same = draw_person(who, camera, np.random.default_rng(1), size=(96, 48))
    assert np.array_equal(np.asarray(image), np.asarray(same))  # seeded
    background = camera.background((96, 48), np.random.default_rng(2))

    def frame(**kw):
        return np.asarray(draw_person(who, camera, np.random.default_rng(3), size=(96, 48), view="left",
                                      background=background, occlude=False, **kw), dtype=float)
    assert np.abs(frame(pose_phase=0.25) - frame(pose_phase=0.75)).mean() > 1  # legs and arms move
    assert np.abs(frame(shift=(10, 0)) - frame()).mean() > 1
    assert set(who.attributes()) >= {"upper", "lower", "bag", "hat", "hair"}
    with pytest.raises(ConfigError, match="view must be one of front, back, left, right"):
        draw_person(who, camera, rng, view="above")
    assert camera.sample_view(rng) in VIEWS


def test_fixture_layout_counts_and_names(synthetic_market_root):
    folder = synthetic_market_root / MARKET_FOLDER
    counts = describe(synthetic_market_root)["counts"]
    for subset, sub in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        assert len(list((folder / sub).glob("*.jpg"))) == counts[subset]
    names = [p.name for p in (folder / "bounding_box_test").iterdir()]
    assert sum(n.startswith("0000_") for n in names) == 3 and sum(n.startswith("-1_") for n in names) == 2
    with Image.open(next((folder / "query").iterdir())) as image:
        assert image.size == (32, 64)
    data = build_dataset("market1501", root=synthetic_market_root)
    query_keys = [(pid, cam) for _, pid, cam in data.query]
    assert len(query_keys) == len(set(query_keys))  # one query per (identity, camera)
    train_ids = {p.name[:4] for p in (folder / "bounding_box_train").iterdir()}
    assert not train_ids & {p.name[:4] for p in (folder / "query").iterdir()}


def test_generation_is_cached_seeded_and_guarded(tmp_path):
    options = dict(num_ids=6, num_cams=3, images_per_id_per_cam=2, height=32, width=16, seed=5)
    folder = generate_market_dataset(tmp_path / "a", **options)
    stamp = {p: p.stat().st_mtime_ns for p in folder.rglob("*.jpg")}
    assert generate_market_dataset(tmp_path / "a", **options) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.jpg")} == stamp  # second call: no-op
    twin = generate_market_dataset(tmp_path / "b", **options)
    assert [p.read_bytes() for p in sorted(twin.rglob("*.jpg"))] == [p.read_bytes() for p in sorted(stamp)]
    # Other parameters: refused, not regenerated over images another run may be reading.
    with pytest.raises(DatasetError, match=r"other options \(seed 5 there, 6 here\); it is not replaced"):
        generate_market_dataset(tmp_path / "a", **dict(options, seed=6))
    assert describe(tmp_path / "a")["params"]["seed"] == 5
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.jpg")} == stamp
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [MARKET_FOLDER]  # no temporary folders left
    (tmp_path / "real" / MARKET_FOLDER).mkdir(parents=True)
    with pytest.raises(DatasetError, match=rf"{MARKET_FOLDER} exists and was not written by .*{MANIFEST}"):
        generate_market_dataset(tmp_path / "real", **options)
    with pytest.raises(ConfigError, match=r"num_ids=1 \(expected 2\.\.9999"):
        generate_market_dataset(tmp_path / "c", **dict(options, num_ids=1))


def test_registered_synthetic_dataset(tmp_path):
    data = build_dataset("synthetic", root=tmp_path, num_ids=8, num_cams=3, height=32, width=16, seed=1)
    assert data.num_train_pids == 4 and (tmp_path / MARKET_FOLDER / MANIFEST).is_file()


def pixel_features(samples) -> np.ndarray:
    """Pixels of 16x8 thumbnails (few dimensions keep the linear fit fast), L2-normalised."""
    features = np.stack([np.asarray(Image.open(p).convert("RGB").resize((8, 16)), np.float32).ravel()
                         for p, _, _ in samples])
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def test_learnable_but_not_trivial(tmp_path):
    """Raw pixels rank poorly (cameras change lighting, background, scale and view); a linear projection
    learned on the training identities ranks unseen identities far better, so the identity signal is there."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from threadpoolctl import threadpool_limits

    generate_market_dataset(tmp_path, num_ids=60, height=32, width=16, seed=0)
    data = build_dataset("market1501", root=tmp_path)
    train, query, gallery = (pixel_features(s) for s in (data.train, data.query, data.gallery))
    labels = [np.array([s[i] for s in subset]) for subset in (data.query, data.gallery) for i in (1, 2)]
    q_pids, q_cams, g_pids, g_cams = labels
    raw = mean_average_precision(query, gallery, q_pids, g_pids, q_cams, g_cams)
    with threadpool_limits(1):  # a small fit: BLAS threads would only contend with the other test processes
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.3).fit(train, [pid for _, pid, _ in data.train])
    learned = mean_average_precision(lda.transform(query), lda.transform(gallery), q_pids, g_pids, q_cams, g_cams)
    assert raw < 0.12, f"raw-pixel mAP {raw:.3f}: the data is too easy"
    assert learned > max(0.2, 2.5 * raw), f"learned mAP {learned:.3f} vs raw {raw:.3f}: nothing to learn"


def test_mean_average_precision_helper():
    gallery = np.array([[0.0], [1.0], [2.0], [3.0]])
    g_pids, g_cams = np.array([1, 2, 1, 3]), np.array([1, 1, 1, 0])
    # Query pid 1 at 0.1: ranks 1 and 3 hold its matches -> AP = (1/1 + 2/3) / 2.
    value = mean_average_precision(np.array([[0.1]]), gallery, np.array([1]), g_pids, np.array([0]), g_cams)
    assert value == pytest.approx((1 + 2 / 3) / 2)
    # Same camera as both matches: no valid match, query skipped -> only the pid-3 query (cam 1) counts.
    value = mean_average_precision(np.array([[0.1], [2.9]]), gallery, np.array([1, 3]), g_pids,
                                   np.array([1, 1]), g_cams)
    assert value == pytest.approx(1.0)
