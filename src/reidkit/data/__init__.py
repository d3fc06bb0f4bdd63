"""Datasets, synthetic data, transforms, samplers and loaders.

`build_dataset(name, root, **options)` returns an ImageDataset (.train/.query/.gallery lists of
(image_path, pid, camid)); DATASETS lists the names. To add a dataset, see reidkit.data.base (a registered class)
or use "custom" (a CSV file or folder layout, see reidkit.data.datasets.custom).
"""
from reidkit.data import datasets  # noqa: F401  (registers the dataset classes)
from reidkit.data.base import DATASETS, ImageDataset, Sample, build_dataset, dataset_options, read_image
from reidkit.data.loaders import ReidImageDataset, build_test_loader, build_train_loader
from reidkit.data.samplers import RandomIdentitySampler
from reidkit.data.synthetic import generate_market_dataset
from reidkit.data.transforms import (TRANSFORM_RECIPES, Cutout, Random2DTranslation, RandomErasing,
                                     build_transforms)

# The vehicle and video families register their datasets and recipes too; last, as they build on the above.
from reidkit.data import vehicle, video  # noqa: E402,F401

__all__ = ["DATASETS", "ImageDataset", "Sample", "build_dataset", "dataset_options", "read_image", "ReidImageDataset",
           "build_train_loader", "build_test_loader", "RandomIdentitySampler", "generate_market_dataset",
           "TRANSFORM_RECIPES", "Cutout", "Random2DTranslation", "RandomErasing", "build_transforms"]
