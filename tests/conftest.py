"""Fixtures shared by every test package."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def no_weight_downloads(tmp_path_factory: pytest.TempPathFactory):
    """No test downloads torchvision's weights or sees the developer's torch hub cache: an empty TORCH_HOME and
    REIDKIT_OFFLINE for the whole session (subprocesses inherit both). tests/models/test_pretrained.py lifts
    REIDKIT_OFFLINE where it fakes the URL opener."""
    from reidkit.models.pretrained import OFFLINE_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        patch.setenv(OFFLINE_ENV, "1")
        yield


@pytest.fixture(scope="session")
def synthetic_market_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a tiny drawn Market-1501 dataset (64x32 images): pass it to build_dataset("market1501", root).

    24 identities (12 train, 12 test), 4 cameras, 2-3 images per identity and camera; the gallery also holds
    3 distractors (pid 0) and 2 junk images (pid -1, which the loader drops). Made once per test session.
    """
    from reidkit.data.synthetic import generate_market_dataset

    root = tmp_path_factory.mktemp("synthetic_market")
    generate_market_dataset(root, num_ids=24, num_cams=4, images_per_id_per_cam=(2, 3), height=64, width=32,
                            num_distractors=3, num_junk=2, seed=0)
    return root
