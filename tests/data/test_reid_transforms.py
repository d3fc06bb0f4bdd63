"""Train/test transforms of docs/specs/top-db-net.md section 7: Random2DTranslation, RandomErasing, Cutout, recipes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.data.transforms import (ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD, TRANSFORM_RECIPES, Cutout,
                                     Random2DTranslation, RandomErasing, build_transforms)
from reidkit.errors import RegistryError


@pytest.fixture
def gradient() -> Image.Image:
    """64x32 image whose pixels all differ, so any shift or crop shows."""
    y, x = np.mgrid[0:64, 0:32]
    return Image.fromarray(np.stack([y * 4, x * 8, (y + x) * 2], -1).astype(np.uint8))


def test_random_2d_translation(gradient):
    torch.manual_seed(0)
    plain = Random2DTranslation(48, 24, p=0.0)(gradient)
    assert plain.size == (24, 48)
    assert np.array_equal(np.asarray(plain), np.asarray(gradient.resize((24, 48), Image.BILINEAR)))
    translate = Random2DTranslation(48, 24, p=1.0)
    assert translate.enlarged == (54, 27)  # 1.125x
    crops = [np.asarray(translate(gradient)) for _ in range(20)]
    assert all(c.shape == (48, 24, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) > 3  # random offsets
    assert not any(np.array_equal(c, np.asarray(plain)) for c in crops)


def erased_mask(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return (before != after).any(0)


def test_random_erasing_box_fill_area_and_probability():
    torch.manual_seed(0)
    erase = RandomErasing(p=1.0)
    areas = []
    for _ in range(200):
        image = torch.randn(3, 96, 32)
        out = erase(image)
        mask = erased_mask(image, out)
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        if len(rows):
            assert mask.sum() == len(rows) * len(cols)  # one rectangle
            assert torch.allclose(out[:, mask], torch.tensor(ERASING_FILL).unsqueeze(1).expand(3, int(mask.sum())))
            areas.append(float(mask.sum()) / (96 * 32))
    assert 0.015 <= min(areas) and max(areas) <= 0.42  # 0.02-0.4 of the image, up to rounding
    assert len(areas) > 180  # with 100 tries a fitting box is almost always found
    image = torch.randn(3, 96, 32)
    assert torch.equal(RandomErasing(p=0.0)(image), image)
    hits = sum(bool(erased_mask(image, RandomErasing(p=0.5)(image)).any()) for _ in range(400))
    assert 150 < hits < 250


def test_cutout_scaled_box_and_zero_fill():
    torch.manual_seed(0)
    image = torch.randn(3, 192, 64)
    cutout = Cutout(p=1.0, reference_size=(384, 128))
    assert cutout.box(192, 64) == (32, 32) and cutout.box(384, 128) == (64, 64)
    out = cutout(image)
    mask = erased_mask(image, out)
    assert int(mask.sum()) == 32 * 32 and torch.all(out[:, mask] == 0)
    small = torch.randn(3, 64, 32)
    assert torch.equal(Cutout(p=1.0)(small), small)  # the fixed 64x64 box does not fit: left as is


def test_recipes_shapes_normalisation_and_registry(gradient):
    torch.manual_seed(0)
    test = build_transforms(48, 24, train=False)
    x = test(gradient)
    assert x.shape == (3, 48, 24) and x.dtype == torch.float32
    expected = (np.asarray(gradient.resize((24, 48), Image.BILINEAR), np.float32)[0, 0] / 255 - IMAGENET_MEAN)
    assert torch.allclose(x[:, 0, 0], torch.tensor(expected / IMAGENET_STD, dtype=torch.float32), atol=0.03)
    assert torch.equal(test(gradient), x)  # deterministic
    for recipe in ("top_db_net", "bdb"):
        train = build_transforms(48, 24, train=True, recipe=recipe)
        outs = [train(gradient) for _ in range(10)]
        assert all(o.shape == (3, 48, 24) for o in outs) and len({o.numpy().tobytes() for o in outs}) > 1
    names = [type(t).__name__ for t in build_transforms(48, 24, train=True).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "Random2DTranslation", "ToTensor", "Normalize",
                     "RandomErasing"]
    assert "Cutout" in [type(t).__name__ for t in build_transforms(48, 24, train=True, recipe="bdb").transforms]
    assert {"top_db_net", "bdb"} <= set(TRANSFORM_RECIPES.names())
    with pytest.raises(RegistryError, match="unknown transform recipe 'bdbb'.*Did you mean 'bdb'"):
        build_transforms(48, 24, train=True, recipe="bdbb")
