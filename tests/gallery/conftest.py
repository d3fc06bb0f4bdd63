"""Fixtures of the gallery command tests: tiny real reidkit checkpoints (Top-DB-Net on ResNet-18 at 64x32, as
training writes them) and folders of drawn person crops named like Market-1501."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from gallery_helpers import draw_crops, write_tiny_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Callable[[int], Path]:
    """checkpoint(seed) -> a cached tiny checkpoint; two seeds are two different models (weights)."""
    folder, made = tmp_path_factory.mktemp("gallery_checkpoints"), {}

    def make(seed: int = 0) -> Path:
        if seed not in made:
            made[seed] = write_tiny_checkpoint(folder / f"top_db_net_{seed}.pth", seed)
        return made[seed]

    return make


@pytest.fixture(scope="session")
def crops(tmp_path_factory) -> Path:
    """40 crops: 10 identities x 3 cameras (read-only for the tests: copy it to change it)."""
    folder = tmp_path_factory.mktemp("gallery_crops")
    draw_crops(folder, 40)
    return folder
