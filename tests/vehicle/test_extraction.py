"""Flip + multi-scale test-time augmentation, multi-model fusion, feature file writing."""
import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.features.pipeline import fuse_features, view_features
from reidkit.postprocess.extraction import extract_to_file, image_areas
from reidkit.features.files import load_features


class HeightOneHot(torch.nn.Module):
    """Feature = one-hot of the input height: shows which sizes the model saw."""

    def forward(self, x):
        out = torch.zeros(len(x), 64)
        out[:, x.shape[2]] = 1.0
        return out


class EdgeColumns(torch.nn.Module):
    """Feature = (mean of the left column, mean of the right column): shows flips."""

    def forward(self, x):
        return torch.stack([x[..., 0].mean(dim=(1, 2)), x[..., -1].mean(dim=(1, 2))], dim=1)


def test_each_scale_is_taken_from_the_original_image():
    images = torch.rand(2, 3, 16, 16)
    feats = view_features(HeightOneHot(), images, scales=(1.0, 0.5, 2.0), pool="sum_normalize")
    hot = torch.nonzero(feats[0]).flatten().tolist()
    assert hot == [8, 16, 32]  # a compounding implementation would see 16, 8 and 16
    np.testing.assert_allclose(feats.norm(dim=1), [1.0, 1.0], atol=1e-6)


def test_flip_sums_the_mirrored_view():
    images = torch.zeros(1, 3, 4, 4)
    images[..., 0] = 1.0  # bright left column
    plain = view_features(EdgeColumns(), images, pool="sum_normalize")
    both = view_features(EdgeColumns(), images, flip=True, pool="sum_normalize")
    np.testing.assert_allclose(plain, [[1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(both, [[2 ** -0.5, 2 ** -0.5]], atol=1e-6)
    with pytest.raises(ValueError, match="positive side-length factors"):
        view_features(EdgeColumns(), images, flip=True, scales=(1.0, 0.0), pool="sum_normalize")


def test_fusion_is_unit_norm_and_averages_cosines():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 8)), 3.0 * rng.standard_normal((5, 4))
    fused = fuse_features([a, b])
    assert fused.shape == (5, 12)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = (unit(a) @ unit(a).T + unit(b) @ unit(b).T) / 2
    np.testing.assert_allclose(fused @ fused.T, expected, atol=1e-5)
    with pytest.raises(ValueError, match="different numbers of rows"):
        fuse_features([a, b[:3]])


def test_extract_to_file_writes_the_chain_inputs(tmp_path):
    paths = []
    for i, size in enumerate([(10, 20), (200, 100), (30, 30)]):
        paths.append(str(tmp_path / f"000{i}.jpg"))
        Image.new("RGB", size).save(paths[-1])
    assert image_areas(paths).tolist() == [200, 20000, 900]
    batch = {"img": torch.rand(3, 3, 8, 8), "pid": torch.tensor([1, 1, 2]), "camid": torch.tensor([0, 1, 0]),
             "path": paths}
    out = extract_to_file([EdgeColumns(), HeightOneHot()], [batch], [batch], tmp_path / "f.mat", scales=(1.0,))
    feats = load_features(out)
    assert feats["query_f"].shape == (3, 66) and feats["gallery_f"].shape == (3, 66)
    np.testing.assert_allclose(np.linalg.norm(feats["gallery_f"], axis=1), 1.0, atol=1e-5)
    assert feats["query_label"].tolist() == [1, 1, 2] and feats["gallery_cam"].tolist() == [0, 1, 0]
    assert feats["gallery_area"].tolist() == [200, 20000, 900]
    assert feats["gallery_name"].tolist() == ["0000.jpg", "0001.jpg", "0002.jpg"]
