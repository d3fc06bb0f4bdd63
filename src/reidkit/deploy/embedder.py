"""`reidkit.Embedder`: the one way to turn crops into features outside training.

    emb = Embedder.load("runs/x/checkpoints/last.pth")        # or a reference checkpoint, model.onnx, model.pt
    feats = emb.embed(["a.jpg", pil_image, rgb_array])       # [N, D] float32, L2-normalised
    feats = emb.embed_crops(frame, boxes_xyxy, bgr=True)      # crops of an OpenCV frame
    emb.threshold                                            # calibrated same-person cosine threshold, or None

Backends: "torch" for checkpoints and TorchScript files, "onnxruntime" for ONNX files; the preprocessing
(resize, normalise) is the model's test transform done in PIL + numpy (deploy/preprocess.py) for both, so a
checkpoint and its export give the same features.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from PIL import Image

from reidkit.deploy.metadata import build_metadata, export_kind, fingerprint
from reidkit.deploy.preprocess import Preprocessing, preprocess, read_rgb
from reidkit.deploy.runtime import DEFAULT_BACKENDS, Runner, TorchRunner, open_export
from reidkit.errors import ConfigError, DatasetError


def _normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        raise ConfigError("images must be a list (of paths, PIL images or H x W x 3 uint8 arrays), got a single "
                          f"{type(images).__name__}; wrap it in a list")
    return list(images)


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


class Embedder:
    """Features of person (or vehicle) crops from a trained model; see the module docstring."""

    def __init__(self, runner: Runner, metadata: dict[str, Any], *, source: str, backend: str,
                 batch_size: int = 32) -> None:
        self.runner, self.metadata, self.source, self.backend = runner, metadata, source, backend
        self.batch_size = _check_batch_size(batch_size)
        self.steps = Preprocessing(tuple(metadata["input_size"]), metadata["interpolation"],
                                   tuple(metadata["mean"]), tuple(metadata["std"]))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu", backend: str | None = None, batch_size: int = 32,
             trust_checkpoint: bool = False, config: Any = None, threads: int = 0) -> "Embedder":
        """An Embedder for `path`: a reidkit checkpoint, a reference checkpoint, an exported .onnx, or a
        TorchScript file (with its metadata). backend: None picks torch for checkpoints and TorchScript,
        onnxruntime for ONNX. config (a Config or YAML path) says which model a checkpoint holds when it has no
        stored config. Checkpoints holding more than tensors are unpickled only with trust_checkpoint=True.
        threads: onnxruntime's intra-op threads (0: its default); torch uses its process-wide setting."""
        path = os.fspath(path)
        kind = export_kind(path)
        if kind is not None:
            if config is not None:
                raise ConfigError(f"config= applies to checkpoints; {path} is an exported file with its own metadata")
            runner, metadata = open_export(path, backend=backend, device=device, threads=threads)
            return cls(runner, metadata, source=path, backend=backend or DEFAULT_BACKENDS[kind], batch_size=batch_size)
        if backend not in (None, "torch"):
            raise ConfigError(f"backend={backend!r}: checkpoints run with backend='torch'; export the model "
                              "(reidkit export) to run it with onnxruntime")
        from reidkit.deploy.loading import FeatureModel, load_model, random_inputs, weights_sha256

        source = load_model(path, config=config, trust_checkpoint=trust_checkpoint)
        runner = TorchRunner(FeatureModel(source.model), device)
        feature_dim = int(runner(random_inputs(source, 1)).shape[1])
        metadata = build_metadata(source, feature_dim=feature_dim, weights_sha256=weights_sha256(source.model))
        return cls(runner, metadata, source=path, backend="torch", batch_size=batch_size)

    # ------------------------------------------------------------------------------------------ what it is

    @property
    def feature_dim(self) -> int:
        return int(self.metadata["feature_dim"])

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.metadata["input_size"])  # type: ignore[return-value]

    @property
    def seq_len(self) -> int | None:
        return self.metadata["seq_len"]

    @property
    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.metadata)

    @property
    def threshold(self) -> float | None:
        """The calibrated same-person cosine threshold (FPR 1e-3 over query-gallery pairs), when known."""
        return self.metadata["threshold"]

    @property
    def thresholds(self) -> dict[str, float]:
        """Every calibrated threshold by target FPR ("1e-2", "1e-3", "1e-4"); {} when none is known."""
        return dict(self.metadata.get("thresholds") or {})

    def __repr__(self) -> str:
        return (f"Embedder({self.metadata['model']} on {self.metadata['backbone']}, {self.backend}, "
                f"{self.metadata['precision']}, input {self.input_size}, {self.feature_dim}-d, source {self.source!r})")

    # ------------------------------------------------------------------------------------------- features

    def _run(self, count: int, make_batch: Any) -> np.ndarray:
        outs = [self.runner(make_batch(start, min(start + self.batch_size, count)))
                for start in range(0, count, self.batch_size)]
        return _normalize(np.concatenate(outs)) if outs else np.zeros((0, self.feature_dim), np.float32)

    def embed(self, images: Sequence[Any], *, bgr: bool = False) -> np.ndarray:
        """[N, D] float32 L2-normalised features of `images`: paths, RGB PIL images or H x W x 3 uint8 arrays
        (RGB; BGR, e.g. OpenCV frames, with bgr=True)."""
        if self.seq_len:
            raise ConfigError(f"{self.source} is a video model (clips of {self.seq_len} frames): use embed_clips")
        images = _as_list(images)
        if not images:
            raise DatasetError("embed: the image list is empty (embed_crops returns [0, D] for no boxes)")
        return self._run(len(images), lambda a, b: preprocess(images[a:b], self.steps, bgr=bgr, start=a))

    def embed_clips(self, clips: Sequence[Sequence[Any]], *, bgr: bool = False) -> np.ndarray:
        """[N, D] features of N clips of exactly seq_len frames each (video models)."""
        if not self.seq_len:
            raise ConfigError(f"{self.source} is an image model: use embed")
        if len(clips) == 0:
            raise DatasetError("embed_clips: the clip list is empty")
        for i, clip in enumerate(clips):
            if len(clip) != self.seq_len:
                raise DatasetError(f"clip {i} has {len(clip)} frames; this model takes clips of {self.seq_len}")

        def batch(a: int, b: int) -> np.ndarray:
            frames = preprocess([f for clip in clips[a:b] for f in clip], self.steps, bgr=bgr)
            return frames.reshape(b - a, self.seq_len, *frames.shape[1:])

        return self._run(len(clips), batch)

    def embed_crops(self, frame: Any, boxes_xyxy: Any, *, bgr: bool = False) -> np.ndarray:
        """[len(boxes), D] features of the boxes (x1, y1, x2, y2 in pixels) cut from `frame` (H x W x 3 uint8,
        or a path / PIL image). Boxes are clipped to the frame; a box with no area left is an error naming it;
        no boxes give [0, D]."""
        image = np.asarray(read_rgb(frame, 0, bgr=bgr))
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
            raise DatasetError(f"boxes_xyxy must be an [N, 4] array of finite (x1, y1, x2, y2), got shape "
                               f"{boxes.shape}")
        height, width = image.shape[:2]
        x1 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(int)
        y1 = np.clip(np.floor(boxes[:, 1]), 0, height).astype(int)
        x2 = np.clip(np.ceil(boxes[:, 2]), 0, width).astype(int)
        y2 = np.clip(np.ceil(boxes[:, 3]), 0, height).astype(int)
        empty = np.flatnonzero((x2 <= x1) | (y2 <= y1))
        if len(empty):
            i = int(empty[0])
            raise DatasetError(f"box {i} {boxes[i].tolist()} has no area inside the {width}x{height} frame")
        crops = [image[b:d, a:c] for a, b, c, d in zip(x1, y1, x2, y2)]
        return self._run(len(crops), lambda a, b: preprocess(crops[a:b], self.steps, start=a))
