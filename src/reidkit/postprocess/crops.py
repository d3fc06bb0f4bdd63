"""Detector-crop features added to the image features before normalising (docs/specs/vehicle-aicity.md section 2).

The reference extracts every query and gallery image twice, the image and the detector's tighter crop of it
(same file name), and feeds the chain normalise(f + f_crop). `reidkit postprocess FEATURES --crop-features CROPS`
does the same with a second feature file of the crops, e.g. `reidkit extract --root CROP_DATA ...` on a copy of
the dataset holding the crops. With one model per file this is exactly the reference; for fused files (several
models) the sum is normalised as a whole, where the reference normalises each model's part before fusing.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from reidkit.errors import PostprocessInputError

SIDES = ("query", "gallery")


def check_same_images(main: Mapping[str, np.ndarray], crops: Mapping[str, np.ndarray], main_path: str | os.PathLike,
                      crop_path: str | os.PathLike) -> None:
    """Both files list the same images in the same order: equal row counts and, where both files hold names
    (`query_name` / `gallery_name`), equal names entry by entry; otherwise PostprocessInputError naming the
    first entry that differs. A side whose names only one file holds cannot be checked and is refused."""
    for side in SIDES:
        rows, crop_rows = len(main[f"{side}_f"]), len(crops[f"{side}_f"])
        if rows != crop_rows:
            raise PostprocessInputError(f"--crop-features {crop_path}: {crop_rows} {side} rows, {main_path} has {rows}")
        key = f"{side}_name"
        if (key in main) != (key in crops):
            holder, other = (main_path, crop_path) if key in main else (crop_path, main_path)
            raise PostprocessInputError(f"--crop-features: {holder} names its {side} images ({key}) but {other} "
                                        "does not, so their order cannot be checked; extract both with "
                                        "`reidkit extract` (which writes the names)")
        if key in main:
            differ = np.flatnonzero(np.asarray(main[key]) != np.asarray(crops[key]))
            if differ.size:
                i = int(differ[0])
                raise PostprocessInputError(
                    f"--crop-features {crop_path}: {side} entry {i} is {crops[key][i]!r}, {main_path} has "
                    f"{main[key][i]!r} ({differ.size} of {rows} {side} names differ): the files must list the "
                    "same images in the same order")


def add_crop_features(main: Mapping[str, np.ndarray], crops: Mapping[str, np.ndarray],
                      main_path: str | os.PathLike = "features", crop_path: str | os.PathLike = "crops"
                      ) -> dict[str, np.ndarray]:
    """`main` with query_f / gallery_f replaced by normalise(f + f_crop) (each row L2-normalised), after
    check_same_images."""
    check_same_images(main, crops, main_path, crop_path)
    out = dict(main)
    for side in SIDES:
        image_f, crop_f = np.asarray(main[f"{side}_f"], np.float32), np.asarray(crops[f"{side}_f"], np.float32)
        if image_f.shape != crop_f.shape:
            raise PostprocessInputError(f"--crop-features {crop_path}: {side}_f is {crop_f.shape}, {main_path} has "
                                        f"{image_f.shape} (the crops must come from the same model(s))")
        summed = image_f + crop_f
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        zero = np.flatnonzero(norms[:, 0] == 0)
        if zero.size:
            raise PostprocessInputError(f"--crop-features {crop_path}: {side} row {int(zero[0])} cancels the "
                                        f"feature of {main_path} (their sum is zero)")
        out[f"{side}_f"] = summed / norms
    return out
