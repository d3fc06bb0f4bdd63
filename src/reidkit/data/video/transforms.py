"""The ASTA frame augmentation (docs/specs/video-aitl-asta.md section 3), registered as the "asta" transform recipe.

Train: resize, horizontal flip, pad 10 + random crop, normalise, random erasing (p 0.5, filled with the ImageNet
mean as in reid-strong-baseline). Wrapped in a ClipTransform, its random draws are shared by a clip's frames.
"""
from __future__ import annotations

import torchvision.transforms as T

from reidkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TRANSFORM_RECIPES, RandomErasing, Transform, eval_transform


@TRANSFORM_RECIPES.register("asta")
def asta(height: int, width: int, *, train: bool) -> Transform:
    if not train:
        return eval_transform(height, width)
    return T.Compose([T.Resize((height, width)), T.RandomHorizontalFlip(0.5), T.Pad(10),
                      T.RandomCrop((height, width)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                      RandomErasing(p=0.5, fill=IMAGENET_MEAN)])
