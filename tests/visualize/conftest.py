"""Tiny stand-ins for the visualisation tests: a model with backbone_features / drop_mask / forward, and a toy
query/gallery of solid-colour 64x32 images written with Pillow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


class TinyDropModel(nn.Module):
    """Backbone map = 4x4-pooled image, so activations follow image brightness; drop mask zeroes the top
    quarter of the map rows. Records every batch size it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.batch_sizes: list[int] = []

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        return F.avg_pool2d(x, 4) * self.scale

    def drop_mask(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        mask = torch.ones(b, 1, h // 4, w // 4)
        mask[:, :, : h // 16] = 0
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone_features(x).flatten(1)


class CountingTransform:
    """PIL -> tensor [3, H, W] in [0, 1]; counts the images it converts."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: Image.Image) -> torch.Tensor:
        self.calls += 1
        array = np.asarray(image.resize((32, 64)), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)


def write_image(path: Path, color: tuple[int, int, int], bright_bottom: bool = False) -> str:
    array = np.zeros((64, 32, 3), dtype=np.uint8)
    array[:] = color
    if bright_bottom:
        array[48:] = 255
    Image.fromarray(array).save(path)
    return str(path)


# Gallery pid/camid/colour; index 0 has the first query's identity AND camera: it must never be drawn.
GALLERY = [(1, 0, (255, 0, 255)), (1, 1, (40, 40, 200)), (2, 1, (40, 200, 40)), (3, 2, (200, 200, 40)),
           (2, 2, (40, 200, 200)), (3, 1, (120, 60, 20))]
# Query 0 (pid 1, cam 0): junk first, then correct, so rank-1 is right. Query 1 (pid 2, cam 0): pid 3 first.
DISTMAT = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                    [9.0, 8.0, 3.0, 5.0, 4.0, 1.0]])


@pytest.fixture
def toy(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    query = [(write_image(images / "q0.jpg", (30, 30, 30), bright_bottom=True), 1, 0),
             (write_image(images / "q1.jpg", (60, 60, 60)), 2, 0)]
    gallery = [(write_image(images / f"g{i}.jpg", color), pid, cam) for i, (pid, cam, color) in enumerate(GALLERY)]
    return query, gallery, DISTMAT.copy()


@pytest.fixture
def model():
    return TinyDropModel()


@pytest.fixture
def transform():
    return CountingTransform()
