"""reidkit.features: one pipeline for every test feature (views, pools, fusion, chunk pooling) and one module
for every feature-file layout."""
import numpy as np
import pytest
import torch
from torch import nn

from reidkit.errors import ConfigError, ReidkitError
from reidkit.features.files import read_feature_file, save_features, save_folder_features
from reidkit.features.pipeline import VIEW_POOLS, embed_images, extract_features, fused_features, view_features


class EdgeColumns(nn.Module):
    """Feature = (mean of the left column, mean of the right column): shows flips."""

    def forward(self, x):
        return torch.stack([x[..., 0].mean(dim=(1, 2)), x[..., -1].mean(dim=(1, 2))], dim=1)


def bright_left(n=1):
    images = torch.zeros(n, 3, 4, 4)
    images[..., 0] = 1.0
    return images


def test_the_two_recipes_flips_are_named_pools():
    assert {"mean", "sum_normalize"} <= set(VIEW_POOLS.names())
    images = bright_left()
    # Top-DB-Net evaluator: the average of the image's and the mirror's features, not normalised.
    assert view_features(EdgeColumns(), images, flip=True, pool="mean").tolist() == [[0.5, 0.5]]
    # AICity TTA: their sum, L2-normalised.
    np.testing.assert_allclose(view_features(EdgeColumns(), images, flip=True, pool="sum_normalize"),
                               [[2 ** -0.5, 2 ** -0.5]], atol=1e-6)
    with pytest.raises(ReidkitError, match="view pool 'avg'"):
        view_features(EdgeColumns(), images, pool="avg")


def test_scales_apply_to_clips_frame_by_frame():
    class Height(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1), float(x.shape[-2]))

    clips = torch.rand(2, 3, 3, 8, 4)  # [B, T, 3, H, W]
    assert view_features(Height(), clips, scales=(1.0, 0.5), pool="mean").flatten().tolist() == [6.0, 6.0]


def test_embed_images_matches_the_loader_path_and_fuses_models():
    torch.manual_seed(0)
    crops = [torch.rand(3, 8, 4) for _ in range(5)]
    linear = nn.Sequential(nn.Flatten(), nn.Linear(96, 6))
    batch = {"img": torch.stack(crops), "pid": [-1] * 5, "camid": [-1] * 5}
    expected = extract_features(linear, [batch], flip=True).features.numpy()
    arrays = [c.numpy() for c in crops]  # arrays or tensors alike
    np.testing.assert_allclose(embed_images(linear, arrays, flip=True, batch_size=2), expected, atol=1e-6)
    fused = embed_images([linear, EdgeColumns()], crops, flip=True, pool="sum_normalize")
    assert fused.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    assert fused_features([linear], [batch]).features.shape == (5, 6)  # one model: as it is, unless fuse=True
    with pytest.raises(ConfigError, match="one size"):
        embed_images(linear, [torch.rand(3, 8, 4), torch.rand(3, 4, 4)])


@pytest.mark.parametrize("suffix", [".npz", ".mat", ".pt"])
def test_every_layout_reads_back_through_one_reader(tmp_path, suffix):
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_folder_features(tmp_path / f"folder{suffix}", feats, ["a.jpg", "b/c.jpg", "d.jpg"])
    matrix, names = read_feature_file(tmp_path / f"folder{suffix}")
    np.testing.assert_array_equal(matrix, feats)
    assert names.tolist() == ["a.jpg", "b/c.jpg", "d.jpg"]
    if suffix != ".pt":
        layout = {"query_f": feats[:1], "gallery_f": feats, "gallery_name": ["x", "y", "z"]}
        save_features(tmp_path / f"qg{suffix}", layout)
        matrix, names = read_feature_file(tmp_path / f"qg{suffix}")
        assert matrix.shape == (3, 4) and names.tolist() == ["x", "y", "z"]
    with pytest.raises(ReidkitError, match="expected a file ending in"):
        save_folder_features(tmp_path / "folder.txt", feats, ["a", "b", "c"])
