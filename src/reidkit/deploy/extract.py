"""`reidkit extract --images DIR` with exported models (ONNX / TorchScript) as --weights: the Embedder's features
of every image under the folder, in the same feature files as checkpoint extraction.

Several exports are fused as several checkpoints are (each model's L2-normalised features / sqrt(M),
concatenated). Test-time augmentation (--scales, --flip) needs the PyTorch model: use the checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from reidkit.deploy.metadata import export_kind
from reidkit.errors import ConfigError

Printer = Callable[[str], None]


def is_export(path: str | os.PathLike) -> bool:
    """True for an existing ONNX or TorchScript file (a missing file is left to the checkpoint path's message)."""
    return Path(path).is_file() and export_kind(path) is not None


def extract_exported(weights: Sequence[str | os.PathLike], images: str | os.PathLike, output: str | os.PathLike, *,
                     device: str = "cpu", batch_size: int = 32, scales: Sequence[float] = (1.0,),
                     flip: bool | None = None, out: Printer = print) -> Path:
    """Features of the images under `images` from exported models into `output` (.npz, .mat or .pt)."""
    from reidkit.deploy.embedder import Embedder
    from reidkit.features.files import FOLDER_SUFFIXES, save_folder_features
    from reidkit.features.pipeline import folder_images, fuse_features

    output = Path(output)
    if output.suffix not in FOLDER_SUFFIXES:
        raise ConfigError(f"--output {output}: expected a file ending in {', '.join(FOLDER_SUFFIXES)}")
    if tuple(scales) != (1.0,) or flip:
        raise ConfigError("--scales / --flip (test-time augmentation) need the PyTorch model: pass the checkpoint "
                          "instead of the exported file")
    files = folder_images(images)
    embedders = [Embedder.load(w, device=device if device != "auto" else "cpu", batch_size=batch_size)
                 for w in weights]
    features = [e.embed(files) for e in embedders]
    fused = features[0] if len(features) == 1 else fuse_features(features)
    relative = [p.relative_to(Path(images).expanduser()).as_posix() for p in files]
    save_folder_features(output, fused, relative)
    out(f"wrote {output}: {len(files)} images x {fused.shape[1]} features ({len(weights)} exported model(s), "
        "L2-normalised)")
    return output
