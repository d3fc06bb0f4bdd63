"""What an exported file carries so that it can be used without reidkit, and where it carries it.

ONNX files hold each entry in `metadata_props` (key -> JSON text; onnxruntime shows them as
`session.get_modelmeta().custom_metadata_map`). TorchScript files hold the whole dict as JSON twice: in the
archive (extra file `reidkit.json`, read by `torch.jit.load(path, _extra_files=...)`) and in a sidecar
`<file>.json` beside it, for tools that do not open the archive.

Entries (see docs/deploy.md): format, format_version, reidkit_version, model, backbone, precision
(fp32 / int8), input_name, output_name, input_layout (NCHW, or NTCHW for video models), batch_size (null:
any), seq_len (frames per clip, video models), input_size [H, W], interpolation, channel_order (RGB),
pixel_scale (1/255), mean, std, feature_dim, normalized (L2), weights_sha256, threshold (calibrated cosine
threshold, or null), thresholds (per FPR); int8 files also keep_fp32 (node-name patterns left in fp32).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

from reidkit.errors import CheckpointError

FORMAT = "reidkit-export"
FORMAT_VERSION = 1
EXTRA_FILE = "reidkit.json"
INPUT_NAME, OUTPUT_NAME = "images", "features"
REQUIRED = ("format", "format_version", "reidkit_version", "model", "backbone", "precision", "input_name",
            "output_name", "input_layout", "batch_size", "seq_len", "input_size", "interpolation",
            "channel_order", "pixel_scale", "mean", "std", "feature_dim", "normalized", "weights_sha256",
            "threshold")
FINGERPRINT_KEYS = ("model", "weights_sha256", "input_size", "mean", "std", "normalized", "feature_dim",
                    "precision")


def build_metadata(source: Any, *, feature_dim: int, weights_sha256: str, precision: str = "fp32",
                   batch_size: int | None = None) -> dict[str, Any]:
    """The metadata of `source` (a reidkit.deploy.loading.ModelSource) exported or loaded for embedding."""
    from reidkit import __version__
    from reidkit.metrics.verification import fpr_label

    steps = source.preprocessing
    thresholds = {fpr_label(float(k.rsplit("@", 1)[1])): float(v) for k, v in source.metrics.items()
                  if k.startswith("verify/threshold@") and isinstance(v, (int, float))}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "reidkit_version": __version__,
        "model": source.name, "backbone": source.backbone, "precision": precision,
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "input_layout": "NCHW" if source.seq_len is None else "NTCHW", "batch_size": batch_size,
        "seq_len": source.seq_len, "input_size": list(steps.input_size), "interpolation": steps.interpolation,
        "channel_order": "RGB", "pixel_scale": 1 / 255, "mean": list(steps.mean), "std": list(steps.std),
        "feature_dim": int(feature_dim), "normalized": True, "weights_sha256": weights_sha256,
        "threshold": source.threshold, "thresholds": thresholds,
    }


def fingerprint(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the features a model makes (two models with one fingerprint make the same features)."""
    return {key: metadata[key] for key in FINGERPRINT_KEYS}


def validate(metadata: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`metadata` if it is reidkit export metadata this reidkit reads; else CheckpointError naming the problem."""
    if metadata.get("format") != FORMAT:
        keys = sorted(metadata)[:12]
        raise CheckpointError(f"{source}: no reidkit export metadata (format {metadata.get('format')!r}, keys "
                              f"{keys}); export the model with `reidkit export`")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{source}: export metadata version {version!r}; this reidkit reads up to "
                              f"{FORMAT_VERSION}")
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise CheckpointError(f"{source}: export metadata lacks {', '.join(missing)}; re-export the model")
    size = metadata["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise CheckpointError(f"{source}: metadata input_size={size!r}; expected [height, width]")
    if not isinstance(metadata["feature_dim"], int) or metadata["feature_dim"] < 1:
        raise CheckpointError(f"{source}: metadata feature_dim={metadata['feature_dim']!r}; expected a positive int")
    return dict(metadata)


def set_onnx_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Replace the metadata_props of an onnx.ModelProto with `metadata` (JSON text per key)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)


def parse_props(props: Mapping[str, str]) -> dict[str, Any]:
    """metadata_props / custom_metadata_map -> values; entries that are not JSON are kept as text."""
    out: dict[str, Any] = {}
    for key, text in props.items():
        try:
            out[key] = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            out[key] = text
    return out


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_kind(path: str | os.PathLike) -> str | None:
    """'onnx', 'torchscript' or None (anything else, e.g. a checkpoint), from the file's content."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            # TorchScript archives hold compiled code; torch.save checkpoints hold data.pkl alone.
            if any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist()):
                return "torchscript"
    return None
