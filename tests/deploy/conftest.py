"""Fixtures of the deployment tests: tiny checkpoints of every registered model, a folder of drawn crops."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from deploy_helpers import write_checkpoint


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: on a shared 2-core machine torch's second thread makes these small models 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def checkpoint_of(tmp_path_factory) -> Callable[..., Path]:
    """checkpoint_of(name, **kw) -> a cached tiny checkpoint of model `name` (see write_checkpoint)."""
    folder, made = tmp_path_factory.mktemp("deploy_checkpoints"), {}

    def make(name: str, **kwargs) -> Path:
        key = (name, repr(sorted(kwargs.items())))
        if key not in made:
            made[key] = write_checkpoint(folder / f"{name}_{len(made)}.pth", name, **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="session")
def crops_dir(tmp_path_factory) -> Path:
    """12 drawn person crops of 4 identities (128x64 JPEGs, mixed sizes) in two sub-folders."""
    from PIL import Image

    from reidkit.data.synthetic import Camera, Identity, draw_person

    folder = tmp_path_factory.mktemp("deploy_crops")
    rng = np.random.default_rng(0)
    people = [Identity.sample(rng) for _ in range(4)]
    cameras = [Camera.sample(i, rng) for i in range(2)]
    for i in range(12):
        image = draw_person(people[i % 4], cameras[i % 2], rng, size=(128, 64) if i % 3 else (150, 70))
        target = folder / f"cam{i % 2}" / f"{i % 4:04d}_c{i % 2}_{i:03d}.jpg"
        target.parent.mkdir(exist_ok=True)
        image.save(target, quality=95)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    return folder
