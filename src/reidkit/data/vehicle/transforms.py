"""The AICity recipe's transforms (docs/specs/vehicle-aicity.md sections 1-2), registered as data.recipe "vehicle".

Train: bicubic resize to (h, w), pad 15, RandomResizedCrop((h, w), scale 0.75-1, ratio 0.75-1.33), flip,
normalise, random erasing (p 0.5, area 0.02-0.4, fill 0). Test: bicubic resize to (round(1.1 h),
round(1.1 w)), normalise, no crop (the model pools globally, so the larger test size is fine).
"""
from __future__ import annotations

import torchvision.transforms as T

from reidkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TRANSFORM_RECIPES, RandomErasing, Transform

BICUBIC = T.InterpolationMode.BICUBIC
PAD = 15
TEST_ENLARGE = 1.1


@TRANSFORM_RECIPES.register("vehicle")
def vehicle(height: int, width: int, *, train: bool) -> Transform:
    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        size = (round(TEST_ENLARGE * height), round(TEST_ENLARGE * width))
        return T.Compose([T.Resize(size, interpolation=BICUBIC), *normalise])
    return T.Compose([
        T.Resize((height, width), interpolation=BICUBIC),
        T.Pad(PAD),
        T.RandomResizedCrop((height, width), scale=(0.75, 1.0), ratio=(0.75, 4 / 3), interpolation=BICUBIC),
        T.RandomHorizontalFlip(),
        *normalise,
        RandomErasing(p=0.5, area=(0.02, 0.4), fill=(0.0, 0.0, 0.0)),
    ])
