import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reidkit.errors import ConfigError
from reidkit.visualize import visualize_test_run

CELL = (64, 32)
WIDTH = 4 * 32 + 3 * 10 + 90  # query + top-3
LEFTS = [0, 132, 174, 216]


def pixel(path, x, y):
    return np.asarray(Image.open(path).convert("RGB"), dtype=int)[y, x]


def close(actual, expected, tol=40):
    return np.all(np.abs(np.asarray(actual) - np.asarray(expected)) <= tol)


def run(toy, model, transform, save_dir, **kwargs):
    query, gallery, distmat = toy
    options = dict(modes=["visrank"], topk=3, transform=transform, dataset_name="toy", cell_size=CELL)
    options.update(kwargs)
    return visualize_test_run(model, query, gallery, distmat, save_dir, **options)


def test_writes_every_mode_with_layout_borders_and_error_prefix(toy, model, transform, tmp_path):
    modes = ["visrank", "visrankactiv", "visrankactivthr", "visdrop"]
    paths = run(toy, model, transform, tmp_path / "out", modes=modes)
    names = [p.relative_to(tmp_path / "out").as_posix() for p in paths]
    assert names == [
        "visrank_toy/q0.jpg", "visrankactiv_toy/q0.jpg", "visrankactivthr_toy/q0.jpg", "visdrop_toy/q0.jpg",
        "visrank_toy/q1.jpg", "visrankactiv_toy/q1.jpg", "visrankactivthr_toy/error_q1.jpg", "visdrop_toy/q1.jpg",
    ]
    heights = {"visrank": 64, "visrankactiv": 138, "visrankactivthr": 212, "visdrop": 212}
    for path in paths:
        assert Image.open(path).size == (WIDTH, heights[path.parent.name[:-4]])
    # q0: the same-identity-same-camera item (magenta, distance 0) is skipped; rank-1 is g1 (pid 1, correct).
    q0 = paths[0]
    for left, colour in zip(LEFTS, [(0, 0, 0), (0, 255, 0), (255, 0, 0), (255, 0, 0)]):
        assert close(pixel(q0, left + 2, 32), colour)
    assert close(pixel(q0, LEFTS[1] + 16, 32), (40, 40, 200))
    q1 = paths[4]
    for left, colour in zip(LEFTS, [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 255, 0)]):
        assert close(pixel(q1, left + 2, 32), colour)


def test_activation_rows_follow_the_image_and_masks(toy, model, transform, tmp_path):
    paths = run(toy, model, transform, tmp_path, modes=["visrankactiv", "visrankactivthr", "visdrop"])
    activ, thr, drop = paths[0], paths[1], paths[5]
    # q0 is dark with a bright bottom: the overlay is blue-ish (JET low) at the top, red-ish at the bottom.
    top, bottom = pixel(activ, 16, 74 + 10), pixel(activ, 16, 74 + 55)
    assert top[2] > top[0] + 30 and bottom[0] > bottom[2] + 30
    # Threshold row: kept (white) over the bright bottom, black over the dark top.
    assert close(pixel(thr, 16, 148 + 5 + 50), (255, 255, 255)) and close(pixel(thr, 16, 148 + 5 + 10), (0, 0, 0))
    # Drop row of q1: the top quarter of every image is dropped (black), the rest is the image.
    assert close(pixel(drop, 16, 148 + 5 + 5), (0, 0, 0), tol=15)
    assert close(pixel(drop, 16, 148 + 5 + 30), (60, 60, 60), tol=15)
    assert close(pixel(drop, LEFTS[1] + 16, 148 + 5 + 5), (0, 0, 0), tol=15)
    assert close(pixel(drop, LEFTS[1] + 16, 148 + 5 + 30), (120, 60, 20), tol=25)


def test_activations_only_for_drawn_images_in_bounded_batches(toy, model, transform, tmp_path):
    model.train()
    run(toy, model, transform, tmp_path, modes=["visrankactiv", "visrankactivthr"], topk=2, batch_size=2,
        num_queries=1)
    assert transform.calls == 3  # q0 + its top-2, not the 6 gallery images
    assert model.batch_sizes == [2, 1]
    assert model.training  # the caller's mode is restored
    model.batch_sizes.clear()
    run(toy, model, transform, tmp_path, modes=["visrankactiv"], batch_size=3)
    assert max(model.batch_sizes) <= 3 and sum(model.batch_sizes) == 8  # 2 queries x (query + top-3)


def test_query_selection_and_stale_error_twin(toy, model, transform, tmp_path):
    assert [p.name for p in run(toy, None, None, tmp_path, query_indices=[1])] == ["q1.jpg"]
    assert [p.name for p in run(toy, None, None, tmp_path, num_queries=1)] == ["q0.jpg"]
    query, gallery, distmat = toy
    out = tmp_path / "thr"
    run(toy, model, transform, out, modes=["visrankactivthr"], query_indices=[1])
    distmat[1, 2] = 0.0  # now a correct match comes first
    visualize_test_run(model, query, gallery, distmat, out, modes=["visrankactivthr"], topk=3,
                       transform=transform, dataset_name="toy", cell_size=CELL, query_indices=[1])
    assert sorted(p.name for p in (out / "visrankactivthr_toy").iterdir()) == ["q1.jpg"]


class NoDropModel(nn.Module):
    def backbone_features(self, x):
        return x


def test_clear_errors(toy, model, transform, tmp_path):
    query, gallery, distmat = toy
    with pytest.raises(ConfigError, match="'heatmap'.*visrank"):
        run(toy, model, transform, tmp_path, modes=["visrank", "heatmap"])
    with pytest.raises(ConfigError, match="no drop_mask"):
        run(toy, NoDropModel(), transform, tmp_path, modes=["visdrop"])
    with pytest.raises(ConfigError, match="transform=None"):
        run(toy, model, None, tmp_path, modes=["visrankactiv"])
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 6\)"):
        visualize_test_run(None, query, gallery, distmat[:, :5], tmp_path, modes=["visrank"])
    with pytest.raises(ValueError, match=r"query_indices \[5\] out of range"):
        run(toy, model, transform, tmp_path, query_indices=[5])
    with pytest.raises(ValueError, match="topk must be a positive int, got 0"):
        run(toy, model, transform, tmp_path, topk=0)
    assert not list(tmp_path.glob("vis*"))
