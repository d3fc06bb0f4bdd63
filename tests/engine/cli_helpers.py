"""A tiny run config for the command-line tests: drawn people at 64x32, Top-DB-Net on ResNet-18, one epoch."""
from __future__ import annotations

from pathlib import Path

import yaml

TINY_DATA_OPTIONS = {"num_ids": 16, "num_cams": 3, "images_per_id_per_cam": [2, 3], "height": 64, "width": 32,
                     "seed": 0}


def write_tiny_config(folder: Path, **sections: dict) -> Path:
    """configs for `reidkit train/test/extract`: every run of the tests' size; `sections` update the defaults."""
    cfg = {
        "data": {"name": "synthetic", "root": str(folder / "data"), "options": TINY_DATA_OPTIONS,
                 "height": 64, "width": 32, "num_instances": 4, "workers": 0},
        "model": {"name": "top_db_net", "backbone": "resnet18", "pretrained": None},
        "optim": {"lr": 1e-3},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1, "seed": 0},
        "test": {"batch_size": 32, "eval_period": 0, "rerank": True, "max_rank": 5},
        "checkpoint": {"period": 1},
        "output": {"dir": str(folder / "run"), "progress": False},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
