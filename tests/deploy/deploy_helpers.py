"""Helpers of the deployment tests (imported by name: `from conftest import` would find whichever conftest.py
pytest imported last)."""
from __future__ import annotations

from pathlib import Path

import torch

# Small widths so that every model exports in seconds; a model missing here is tested with its defaults.
TINY_OPTIONS = {
    "top_db_net": {"global_dim": 16, "drop_dim": 24},
    "top_db_net_no_reg": {"global_dim": 16, "drop_dim": 24},
    "top_db_net_no_drop": {"global_dim": 16},
    "bdb": {"global_dim": 16, "drop_dim": 24},
    "ft_net": {"bottleneck": 16},
    "video_ta": {"middle": 8, "frame_size": [64, 32]},
    "video_rnn": {"hidden": 16},
    "asta": {"attribute_dims": {"irrelevant": 3, "relevant": 4}, "frame_size": [64, 32]},
}
SEQ_LEN = 3


def randomize_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics that are not the identity, so that eval-mode BatchNorm matters in the export."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))


def write_checkpoint(path: Path, name: str, *, backbone: str = "resnet18", height: int = 64, width: int = 32,
                     metrics: dict | None = None, seed: int = 0, pretrained: str | None = None, **options) -> Path:
    """A reidkit checkpoint of model `name` (tiny widths) with its config, as training writes it. Without
    `pretrained` backbone weights, the BatchNorm statistics are randomised (see randomize_batch_norm)."""
    from reidkit.config import config_from_dict
    from reidkit.engine.checkpoint import save_checkpoint
    from reidkit.models import build_model

    options = {**TINY_OPTIONS.get(name, {}), **options}
    torch.manual_seed(seed)
    model = build_model(name, 5, backbone=backbone, pretrained=pretrained, **options)
    if pretrained is None:
        randomize_batch_norm(model, seed)
    cfg = config_from_dict({"model": {"name": name, "backbone": backbone, "pretrained": None, "options": options},
                            "data": {"height": height, "width": width, "seq_len": SEQ_LEN}})
    save_checkpoint(path, model, epoch=1, config=cfg.to_dict(), metrics=metrics or {})
    return path


def write_plain_onnx(path: Path, props: dict | None = None) -> None:
    """An ONNX file that reidkit did not write (a Linear layer), with `props` as JSON metadata_props."""
    import json
    import warnings

    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notice about its TorchScript-based exporter
        torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(path), dynamo=False)
    if props is not None:
        model = onnx.load(str(path))
        for key, value in props.items():
            model.metadata_props.add(key=key, value=json.dumps(value))
        onnx.save(model, str(path))
