import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from reidkit.visualize import activation_map, apply_drop_mask, binary_mask, overlay, threshold_mask


def test_activation_map_peaks_where_the_feature_map_peaks():
    feats = torch.zeros(2, 4, 8, 4)
    feats[0, :, 6, 1] = 1.0  # peak in map cell (row 6, col 1) -> image rows 48..55, cols 8..15 at 64x32
    feats[1, :, 1, 3] = 100.0  # a much stronger peak elsewhere: each image is scaled on its own
    acts = activation_map(feats, (64, 32))
    assert acts.shape == (2, 64, 32) and acts.dtype == np.uint8
    row, col = np.unravel_index(acts[0].argmax(), acts[0].shape)
    assert 48 <= row < 56 and 8 <= col < 16
    row, col = np.unravel_index(acts[1].argmax(), acts[1].shape)
    assert 8 <= row < 16 and 24 <= col < 32
    for act in acts:
        assert act.min() == 0 and act.max() == 255


def test_activation_map_min_max_scaling_is_monotonic_not_wrapped():
    # Energy (sum of squares) equal to the row index: the map must rise from 0 at the top to 255 at the bottom.
    # The reference formula (a - max) / (max - min) would give values <= 0 that wrap around in uint8.
    rows = torch.arange(8, dtype=torch.float32).sqrt()
    feats = rows.view(1, 8, 1).expand(1, 8, 4).clone()
    act = activation_map(feats, (64, 32))
    column = act[:, 5].astype(int)
    assert column[0] == 0 and column[-1] == 255
    assert np.all(np.diff(column) >= 0)
    assert abs(column[32] - 127.5) <= 10
    assert np.all(act == act[:, :1])  # no variation across the width


def test_activation_map_rejects_bad_input():
    assert not activation_map(torch.ones(3, 4, 2), (8, 4)).any()  # flat map: no contrast, all zero
    with pytest.raises(ValueError, match=r"\[C, h, w\] or \[B, C, h, w\].*\(4, 2\)"):
        activation_map(torch.ones(4, 2), (8, 4))
    with pytest.raises(ValueError, match="NaN"):
        activation_map(torch.full((1, 2, 2), float("nan")), (8, 4))
    with pytest.raises(ValueError, match=r"size must be \(height, width\).*\(8,\)"):
        activation_map(torch.ones(1, 2, 2), (8,))


def test_threshold_mask_keeps_act_over_255_at_least_maskthr():
    act = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mask = np.asarray(threshold_mask(act, 0.7))
    flat = mask.reshape(256, 3)
    # 0.7 * 255 = 178.5: 179 is the first kept value. BONE maps 255 to white and 0 to black.
    assert (flat[179:] == 255).all() and (flat[:179] == 0).all()
    assert binary_mask(act, 0.0).all() and binary_mask(act, 1.0).sum() == 1
    with pytest.raises(ValueError, match=r"maskthr must be a number in \[0, 1\].*1.5"):
        threshold_mask(act, 1.5)


def test_overlay_blends_half_image_half_jet():
    jet = colormaps["jet"]
    act = np.zeros((4, 2), dtype=np.uint8)
    act[2:] = 255
    white = Image.new("RGB", (2, 4), (255, 255, 255))
    blended = np.asarray(overlay(white, act)).astype(float)
    expected_low = 0.5 * 255 + 0.5 * np.array(jet(0)[:3]) * 255
    expected_high = 0.5 * 255 + 0.5 * np.array(jet(255)[:3]) * 255
    assert np.allclose(blended[0, 0], expected_low, atol=1)
    assert np.allclose(blended[3, 1], expected_high, atol=1)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3, 2\)"):
        overlay(Image.new("RGB", (2, 3)), act)


def test_apply_drop_mask_blacks_out_dropped_rows():
    image = Image.new("RGB", (2, 4), (200, 100, 50))
    kept = np.ones((4, 2), dtype=bool)
    kept[:1] = False
    out = np.asarray(apply_drop_mask(image, kept))
    assert (out[0] == 0).all() and (out[1:] == (200, 100, 50)).all()
