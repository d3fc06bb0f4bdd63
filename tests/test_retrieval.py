import numpy as np
import pytest
import torch

from reidkit.errors import ReidkitError
from reidkit.metrics import MetricInputError
from reidkit.retrieval import GalleryIndex


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    gallery = (centres[rng.integers(0, 40, 2000)] + 0.3 * rng.normal(size=(2000, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 40, 30)] + 0.3 * rng.normal(size=(30, 16))).astype(np.float32)
    exact = unit(queries) @ unit(gallery).T
    return gallery, queries, np.argsort(-exact, axis=1)[:, :5], np.sort(exact, axis=1)[:, ::-1][:, :5]


def test_flat_is_exact_and_keeps_ids(data):
    gallery, queries, top, scores = data
    index = GalleryIndex(16)
    index.add(gallery[:1000], ids=np.arange(1000) + 7)
    index.add(gallery[1000:], ids=np.arange(1000, 2000) + 7)
    got_scores, got_ids = index.search(queries, k=5)
    np.testing.assert_array_equal(got_ids, top + 7)
    np.testing.assert_allclose(got_scores, scores, atol=1e-5)


def test_ivf_probing_all_lists_is_exact_and_hnsw_finds_neighbours(data):
    gallery, queries, top, _ = data
    ivf = GalleryIndex(16, "ivf", nlist=8, nprobe=8)
    ivf.add(gallery)
    np.testing.assert_array_equal(ivf.search(queries, k=5)[1], top)
    hnsw = GalleryIndex(16, "hnsw", hnsw_m=16, ef_construction=40, ef_search=64)
    hnsw.add(gallery)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(hnsw.search(queries, 5)[1], top)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(data, tmp_path, kind):
    gallery, queries, _, _ = data
    index = GalleryIndex(16, kind, nlist=8, nprobe=3, ef_construction=40)
    index.add(gallery, ids=np.arange(2000) * 2)
    index.save(tmp_path / "gallery.index")
    loaded = GalleryIndex.load(tmp_path / "gallery.index")
    assert len(loaded) == 2000 and loaded.kind == kind and loaded.nprobe == 3
    for a, b in zip(index.search(queries, 4), loaded.search(queries, 4)):
        np.testing.assert_array_equal(a, b)


def test_inputs_are_not_normalised_in_place(data):
    gallery = torch.from_numpy(data[0][:50].copy())
    GalleryIndex(16).add(gallery)
    np.testing.assert_array_equal(gallery.numpy(), data[0][:50])


def test_bad_input(tmp_path, data):
    index = GalleryIndex(16)
    with pytest.raises(MetricInputError, match="the index is empty"):
        index.search(data[1])
    with pytest.raises(MetricInputError, match=r"features has shape \(3, 8\); expected \[n, 16\]"):
        index.add(np.ones((3, 8)))
    with pytest.raises(MetricInputError, match=r"expected \(3,\) integers"):
        index.add(np.ones((3, 16)), ids=[1, 2])
    with pytest.raises(MetricInputError, match="IVF training needs at least nlist=64"):
        GalleryIndex(16, "ivf", nlist=64).add(np.ones((10, 16)))
    with pytest.raises(MetricInputError, match="kind must be one of"):
        GalleryIndex(16, "lsh")
    (tmp_path / "junk.index").write_bytes(b"not an index")
    with pytest.raises(ReidkitError, match="is not a reidkit gallery index"):
        GalleryIndex.load(tmp_path / "junk.index")
