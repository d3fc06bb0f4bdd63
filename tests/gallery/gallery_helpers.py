"""Helpers of the gallery tests: tiny real reidkit checkpoints (Top-DB-Net on ResNet-18 at 64x32, as training
writes them) and drawn person crops named like Market-1501."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_checkpoint(path: Path, seed: int) -> Path:
    import torch

    from reidkit.config import config_from_dict
    from reidkit.engine.checkpoint import save_checkpoint
    from reidkit.models import build_model

    torch.manual_seed(seed)
    options = {"global_dim": 16, "drop_dim": 24}
    model = build_model("top_db_net", 5, backbone="resnet18", **options)
    cfg = config_from_dict({"model": {"name": "top_db_net", "backbone": "resnet18", "pretrained": None,
                                      "options": options}, "data": {"height": 64, "width": 32}})
    return save_checkpoint(path, model, epoch=1, config=cfg.to_dict(), metrics={})


def draw_crops(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` drawn people (64x32 JPEGs) of count // 4 identities in 3 cameras, Market-style names, in two
    sub-folders."""
    from reidkit.data.synthetic import Camera, Identity, draw_person

    rng = np.random.default_rng(seed)
    people = [Identity.sample(rng) for _ in range(max(1, count // 4))]
    cameras = [Camera.sample(i, rng) for i in range(3)]
    paths = []
    for i in range(count):
        pid, cam = i % len(people), i % 3
        target = folder / f"day{i % 2}" / f"{pid + 1:04d}_c{cam + 1}s1_{i:06d}_01.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        draw_person(people[pid], cameras[cam], rng, size=(64, 32)).save(target, quality=90)
        paths.append(target)
    return paths
