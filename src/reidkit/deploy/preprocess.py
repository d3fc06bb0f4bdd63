"""Test-time preprocessing without torch: what a recipe's test transform does, as plain numbers, and the same
steps in PIL + numpy for the Embedder and for consumers of an exported file.

    steps = recipe_preprocessing(height=384, width=128, recipe="top_db_net")
    steps.input_size, steps.interpolation, steps.mean, steps.std
    batch = preprocess([pil_image, array, "crop.jpg"], steps)         # [N, 3, H, W] float32

A recipe's test transform (reidkit.data.transforms) is Resize -> ToTensor -> Normalize; `recipe_preprocessing`
reads those three steps from it, so a recipe with another test-time size (the vehicle recipe enlarges by 1.1)
or interpolation is described as it is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from reidkit.errors import DatasetError, ExportError

PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


@dataclass(frozen=True)
class Preprocessing:
    """Resize to input_size (height, width) with `interpolation`, scale to [0, 1], subtract mean, divide by std
    (RGB order)."""

    input_size: tuple[int, int]
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def recipe_preprocessing(height: int, width: int, recipe: str) -> Preprocessing:
    """The Resize / ToTensor / Normalize steps of `recipe`'s test transform at height x width."""
    import torchvision.transforms as T

    from reidkit.data import build_transforms

    transform = build_transforms(height, width, train=False, recipe=recipe)
    steps = list(getattr(transform, "transforms", [transform]))
    kinds = [type(step).__name__ for step in steps]
    if kinds != ["Resize", "ToTensor", "Normalize"]:
        raise ExportError(f"data.recipe={recipe!r}: its test transform is {kinds}; export describes only "
                          "Resize, ToTensor, Normalize")
    resize, _, normalize = steps
    size = resize.size if isinstance(resize, T.Resize) else None
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise ExportError(f"data.recipe={recipe!r}: its test Resize has size {size!r}; expected (height, width)")
    interpolation = resize.interpolation.value
    if interpolation not in PIL_FILTERS:
        raise ExportError(f"data.recipe={recipe!r}: interpolation {interpolation!r} has no PIL counterpart")
    return Preprocessing((int(size[0]), int(size[1])), interpolation,
                         tuple(float(v) for v in normalize.mean), tuple(float(v) for v in normalize.std))


def _describe(item: Any) -> str:
    return repr(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else type(item).__name__


def read_rgb(item: Any, index: int, *, bgr: bool = False) -> Image.Image:
    """An RGB PIL image from a path, a PIL image (mode RGB) or an H x W x 3 uint8 array (BGR with `bgr`)."""
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as image:
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise DatasetError(f"image {index} ({os.fspath(item)}): cannot be read as an image ({error})") from None
    if isinstance(item, Image.Image):
        if item.mode != "RGB":
            raise DatasetError(f"image {index}: PIL image of mode {item.mode!r}; expected an RGB image "
                               "(image.convert('RGB'))")
        return item
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise DatasetError(f"image {index}: array of shape {item.shape} and dtype {item.dtype}; expected "
                               "H x W x 3 uint8 (RGB, or BGR with bgr=True)")
        if item.shape[0] == 0 or item.shape[1] == 0:
            raise DatasetError(f"image {index}: array of shape {item.shape} has no pixels")
        return Image.fromarray(np.ascontiguousarray(item[..., ::-1] if bgr else item))
    raise DatasetError(f"image {index}: a {_describe(item)}; expected a path, a PIL image or an H x W x 3 uint8 array")


def to_input(image: Image.Image, steps: Preprocessing) -> np.ndarray:
    """[3, H, W] float32: resized, scaled to [0, 1] and normalised, exactly as the test transform does it."""
    height, width = steps.input_size
    resized = image.resize((width, height), PIL_FILTERS[steps.interpolation])
    pixels = np.asarray(resized, dtype=np.float32) / np.float32(255)
    mean, std = np.asarray(steps.mean, np.float32), np.asarray(steps.std, np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def preprocess(images: Sequence[Any], steps: Preprocessing, *, bgr: bool = False, start: int = 0) -> np.ndarray:
    """[N, 3, H, W] float32 network input of the list `images` (see read_rgb); `start` numbers them in errors."""
    return np.stack([to_input(read_rgb(item, start + i, bgr=bgr), steps) for i, item in enumerate(images)])
