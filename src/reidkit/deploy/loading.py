"""A trained model out of a checkpoint, with what deployment needs to know about it.

    source = load_model("runs/x/checkpoints/last.pth")        # reidkit checkpoint: its stored config
    source = load_model("model.pth.tar-400")                   # reference Top-DB-Net checkpoint (384x128)
    source.model, source.preprocessing.input_size, source.seq_len, source.threshold

`FeatureModel` wraps the eval-mode model so that it returns L2-normalised features: the one graph that is
exported, and that the Embedder's torch backend runs.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from reidkit.config import Config, config_from_dict, load_config
from reidkit.deploy.preprocess import Preprocessing, recipe_preprocessing
from reidkit.errors import CheckpointError, ReidkitError
from reidkit.metrics.verification import threshold_key

# The reference implementation trains ResNet-50 models at 384x128; its checkpoints name no model, so the
# Top-DB-Net family is tried in this order (each one's checkpoint fits only its own class).
REFERENCE_MODELS = ("top_db_net", "top_db_net_no_reg", "top_db_net_no_drop")
REFERENCE_INPUT_SIZE = (384, 128)


class FeatureModel(nn.Module):
    """model(x) in eval mode, L2-normalised along the feature dimension."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.model(x), dim=1)


@dataclass
class ModelSource:
    """A model in eval mode and what a consumer needs to feed it."""

    model: nn.Module
    name: str
    backbone: str
    preprocessing: Preprocessing  # the test transform of the model's recipe, as numbers
    seq_len: int | None  # frames per clip for video models, None for image models
    path: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        value = self.metrics.get(threshold_key())
        return float(value) if isinstance(value, (int, float)) else None


def weights_sha256(model: nn.Module) -> str:
    """Hash of the entries that make the features (names, dtypes, shapes, values), classifiers left out: the
    same weights give the same hash in a checkpoint and in every export of it."""
    classifiers = tuple(f"{name}." for name in getattr(model, "classifier_names", ()))
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        if key.startswith(classifiers) or key.endswith("num_batches_tracked"):
            continue
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def random_inputs(source: ModelSource, batch: int, seed: int = 0) -> np.ndarray:
    """Uniform random pixels, normalised as the model's inputs are ([B, 3, H, W] or [B, T, 3, H, W])."""
    steps = source.preprocessing
    frames = (source.seq_len,) if source.seq_len else ()
    pixels = np.random.default_rng(seed).random((batch, *frames, 3, *steps.input_size), dtype=np.float32)
    mean = np.asarray(steps.mean, np.float32)[:, None, None]
    std = np.asarray(steps.std, np.float32)[:, None, None]
    return (pixels - mean) / std


def _as_config(config: Config | str | os.PathLike | None) -> Config | None:
    if config is None or isinstance(config, Config):
        return config
    return load_config(config)


def _registered(name: Any, source: str) -> str:
    from reidkit.models import MODELS

    if not isinstance(name, str) or name not in MODELS:
        raise CheckpointError(f"{source}: holds a model named {name!r}, which is not a registered model "
                              f"(known: {', '.join(MODELS.names())})")
    return name


def _classes_in(state: Mapping[str, Any]) -> int:
    """Identities the classifiers were trained on (they do not change the features; 1 when none is found)."""
    for key, value in state.items():
        if "classifier" in key and key.endswith("weight") and getattr(value, "dim", lambda: 0)() == 2:
            return int(value.shape[0])
    return 1


def _build(cfg: Config, num_classes: int, obj: Any, source: str) -> nn.Module:
    from reidkit.models import build_model, load_weights

    model = build_model(_registered(cfg.model.name, source), num_classes, backbone=cfg.model.backbone,
                        pretrained=None, **cfg.model.options)
    with warnings.catch_warnings():
        # Classifiers sized for other identities are skipped: they play no part in the features.
        warnings.filterwarnings("ignore", message=".*skipped classifier entries.*")
        load_weights(model, obj, source=source)
    return model.eval()


def _source(model: nn.Module, cfg: Config, path: str, metrics: Mapping[str, Any] | None) -> ModelSource:
    from reidkit.models.video import VideoReidModel

    video = isinstance(model, VideoReidModel)
    steps = recipe_preprocessing(cfg.data.height, cfg.data.width, cfg.data.recipe)
    return ModelSource(model, cfg.model.name, cfg.model.backbone, steps, cfg.data.seq_len if video else None, path,
                       dict(metrics or {}))


def _from_reference(obj: Any, path: str) -> ModelSource:
    """A reference Top-DB-Net checkpoint (or a bare state dict): the first of the family it fits."""
    from reidkit.models.weights import extract_state_dict

    state, _ = extract_state_dict(obj, path)
    errors = []
    for name in REFERENCE_MODELS:
        cfg = config_from_dict({"model": {"name": name, "backbone": "resnet50"},
                                "data": {"height": REFERENCE_INPUT_SIZE[0], "width": REFERENCE_INPUT_SIZE[1]}})
        try:
            model = _build(cfg, _classes_in(state), obj, path)
        except ReidkitError as error:
            errors.append(f"{name}: {str(error).split(': ', 1)[-1][:120]}")
            continue
        metrics = obj.get("metrics") if isinstance(obj, Mapping) else None
        return _source(model, cfg, path, metrics if isinstance(metrics, Mapping) else None)
    raise CheckpointError(f"{path}: holds no reidkit config and fits no reference Top-DB-Net model on ResNet-50 "
                          f"({'; '.join(errors)}); pass the run's config (config= / --config) to say which model "
                          "it is")


def load_model(path: str | os.PathLike, *, config: Config | str | os.PathLike | None = None,
               trust_checkpoint: bool = False) -> ModelSource:
    """The model in `path` (reidkit checkpoint, reference checkpoint or bare state dict) in eval mode.

    The model, backbone and input size come from `config` when given, else from the config stored in a reidkit
    checkpoint, else (reference checkpoints) the reference's Top-DB-Net family at 384x128. Files holding more
    than tensors are unpickled only with trust_checkpoint=True.
    """
    from reidkit.models.weights import torch_load

    path = os.fspath(path)
    obj = torch_load(path, trust_checkpoint=trust_checkpoint)
    cfg = _as_config(config)
    reidkit_format = isinstance(obj, Mapping) and obj.get("format") == "reidkit"
    if cfg is None and reidkit_format and obj.get("config"):
        cfg = config_from_dict(obj["config"], source=f"{path} (stored config)")
    if cfg is None and reidkit_format:
        raise CheckpointError(f"{path}: a reidkit checkpoint without a stored config (model "
                              f"{obj.get('model_name')!r}): its input size is unknown; pass the run's config.yaml "
                              "(config= / --config)")
    if cfg is None:
        return _from_reference(obj, path)
    num_classes = int(obj.get("num_classes") or 0) if reidkit_format else 0
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, Mapping) else {}
    model = _build(cfg, num_classes if num_classes > 0 else _classes_in(state), obj, path)
    return _source(model, cfg, path, obj.get("metrics") if reidkit_format else None)
