"""Builders of tiny replicas of the real dataset layouts."""
from __future__ import annotations

from pathlib import Path

from PIL import Image


def write_image(path: Path, color: tuple[int, int, int] = (90, 60, 200), size: tuple[int, int] = (64, 32)) -> Path:
    """A solid (height, width) image; the format follows the suffix, other suffixes get a non-image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() not in (".jpg", ".png", ".bmp"):
        path.write_bytes(b"not an image")
        return path
    Image.new("RGB", (size[1], size[0]), color).save(path)
    return path


def make_bounding_box_layout(folder: Path, subsets: dict[str, list[str]]) -> Path:
    """folder/<subset>/<name> for Market-1501 / DukeMTMC-reID style layouts."""
    for subset, names in subsets.items():
        (folder / subset).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_image(folder / subset / name)
    return folder
