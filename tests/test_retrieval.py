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


@pytest.mark.parametrize("suffix", [".npz", ".mat", ".pt"])
def test_from_feature_file_of_a_folder_extract(data, tmp_path, suffix):
    from reidkit.features.files import save_folder_features  # what `reidkit extract --images DIR` writes

    gallery, queries, top, _ = data
    paths = [f"cam{i % 3}/img_{i:04d}.jpg" for i in range(len(gallery))]
    save_folder_features(tmp_path / f"gallery{suffix}", gallery, paths)
    index = GalleryIndex.from_feature_file(tmp_path / f"gallery{suffix}")
    assert index.kind == "flat" and len(index) == len(gallery)
    _, ids = index.search(queries, k=5)
    np.testing.assert_array_equal(ids, top)
    assert index.names[ids[0, 0]] == paths[top[0, 0]]
    index.save(tmp_path / "gallery.index")  # the names are saved with the index
    np.testing.assert_array_equal(GalleryIndex.load(tmp_path / "gallery.index").names, paths)


def test_from_feature_file_of_a_dataset_extract(data, tmp_path):
    from reidkit.features.files import save_features  # `reidkit extract` without --images

    gallery, queries, top, _ = data
    names = [f"{i:06d}.jpg" for i in range(len(gallery))]
    save_features(tmp_path / "feats.mat", {"query_f": queries, "gallery_f": gallery, "gallery_name": names})
    index = GalleryIndex.from_feature_file(tmp_path / "feats.mat", kind="ivf", nlist=8, nprobe=8)
    np.testing.assert_array_equal(index.search(queries, k=5)[1], top)
    assert list(index.names[:2]) == names[:2]
    query_index = GalleryIndex.from_feature_file(tmp_path / "feats.mat", key="query_f")
    assert len(query_index) == len(queries) and query_index.names is None
    with pytest.raises(ReidkitError, match="no 'features_x' matrix"):
        GalleryIndex.from_feature_file(tmp_path / "feats.mat", key="features_x")
    with pytest.raises(ReidkitError, match="does not exist"):
        GalleryIndex.from_feature_file(tmp_path / "missing.npz")


def test_names_must_cover_every_row(data):
    gallery = data[0]
    index = GalleryIndex(16)
    index.add(gallery[:10], names=[str(i) for i in range(10)])
    with pytest.raises(MetricInputError, match="pass names="):
        index.add(gallery[10:20])
    with pytest.raises(MetricInputError, match="names has 3 entries; expected 10"):
        index.add(gallery[10:20], names=["a", "b", "c"])
    unnamed = GalleryIndex(16)
    unnamed.add(gallery[:10])
    with pytest.raises(MetricInputError, match="no names"):
        unnamed.add(gallery[10:20], names=[str(i) for i in range(10)])


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_mask_searches_only_allowed_rows_and_info_is_saved(data, tmp_path, kind):
    gallery, queries, _, _ = data
    allowed = np.random.default_rng(3).random(len(gallery)) < 0.3
    scores = unit(queries) @ unit(gallery).T
    scores[:, ~allowed] = -np.inf
    want = np.argsort(-scores, axis=1)[:, :5]
    index = GalleryIndex(16, kind, nlist=8, nprobe=8, ef_construction=80, ef_search=200)
    index.add(gallery, ids=np.arange(len(gallery)) + 100)
    index.info["generation"] = 7
    _, ids = index.search(queries, 5, mask=allowed, threads=1)
    assert allowed[ids - 100].all()
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids - 100, want)])
    assert recall == 1.0 if kind != "hnsw" else recall >= 0.9
    index.save(tmp_path / "g.index")
    assert GalleryIndex.load(tmp_path / "g.index").info == {"generation": 7}
    with pytest.raises(MetricInputError, match=r"mask has shape \(3,\) and dtype bool; expected \(2000,\) bool"):
        index.search(queries, 5, mask=np.ones(3, bool))
