"""Image transforms of the reference recipes (docs/specs/top-db-net.md section 7) and a registry for more recipes.

A recipe is `recipe(height, width, *, train) -> callable(PIL image) -> tensor`; others register theirs:

    @TRANSFORM_RECIPES.register("vehicle")
    def vehicle(height, width, *, train): ...

Any recipe's training transform can be given the AICity reference's AutoAugment view (data.autoaugment_epochs,
AnnealedAutoAugment), whose probability falls with the training's progress.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

from reidkit.errors import ConfigError
from reidkit.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The reference fills erased boxes of the *normalised* tensor with these raw values (CIFAR means).
ERASING_FILL = (0.4914, 0.4822, 0.4465)

Transform = Callable[[Image.Image], torch.Tensor]
TRANSFORM_RECIPES: Registry[Callable[..., Transform]] = Registry("transform recipe")


def _uniform(low: float, high: float) -> float:
    # torch's generator, so DataLoader workers (which seed torch per worker) draw different boxes.
    return low + (high - low) * torch.rand(()).item()


class Random2DTranslation:
    """With probability p: resize to 1.125x (height, width), then crop a random (height, width) window;
    otherwise resize to (height, width)."""

    def __init__(self, height: int, width: int, p: float = 0.5) -> None:
        self.size, self.p = (height, width), p
        self.enlarged = (round(height * 1.125), round(width * 1.125))

    def __call__(self, image: Image.Image) -> Image.Image:
        if torch.rand(()).item() >= self.p:
            return F.resize(image, list(self.size))
        enlarged = F.resize(image, list(self.enlarged))
        top = round(_uniform(0, self.enlarged[0] - self.size[0]))
        left = round(_uniform(0, self.enlarged[1] - self.size[1]))
        return F.crop(enlarged, top, left, *self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, p={self.p})"


class RandomErasing:
    """torchreid's random erasing on a [C, H, W] tensor: with probability p, up to 100 tries to fit a box of
    area uniform in `area` x image area and aspect (h/w) uniform in (aspect, 1/aspect), filled per channel.

    torchvision's RandomErasing draws the aspect log-uniformly and gives up after 10 tries, which erases less
    often; hence this class.
    """

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4), aspect: float = 0.3,
                 fill: tuple[float, ...] = ERASING_FILL) -> None:
        self.p, self.area, self.aspect, self.fill = p, area, aspect, fill

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if torch.rand(()).item() >= self.p:
            return tensor
        _, height, width = tensor.shape
        for _ in range(100):
            target = _uniform(*self.area) * height * width
            ratio = _uniform(self.aspect, 1 / self.aspect)
            h, w = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if h < height and w < width:
                top, left = int(torch.randint(height - h + 1, ())), int(torch.randint(width - w + 1, ()))
                tensor = tensor.clone()
                fill = torch.as_tensor(self.fill, dtype=tensor.dtype)[: tensor.shape[0], None, None]
                tensor[:, top: top + h, left: left + w] = fill
                return tensor
        return tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, area={self.area}, aspect={self.aspect}, fill={self.fill})"


class Cutout:
    """BDB's cutout on a [C, H, W] tensor: with probability p, one box of `size` at a random place set to `fill`.

    `reference_size` (height, width) scales the box with the image: size 64 at reference (384, 128) becomes
    32x16 on a 192x64 image. The box is only placed when it is smaller than the image, as in the reference.
    """

    def __init__(self, p: float = 0.5, size: int = 64, fill: float = 0.0,
                 reference_size: tuple[int, int] | None = None) -> None:
        self.p, self.size, self.fill, self.reference_size = p, size, fill, reference_size

    def box(self, height: int, width: int) -> tuple[int, int]:
        if self.reference_size is None:
            return self.size, self.size
        return (max(1, round(self.size * height / self.reference_size[0])),
                max(1, round(self.size * width / self.reference_size[1])))

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if torch.rand(()).item() >= self.p:
            return tensor
        _, height, width = tensor.shape
        h, w = self.box(height, width)
        if not (h < height and w < width):
            return tensor
        top, left = int(torch.randint(height - h + 1, ())), int(torch.randint(width - w + 1, ()))
        tensor = tensor.clone()
        tensor[:, top: top + h, left: left + w] = self.fill
        return tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, size={self.size}, fill={self.fill}, ref={self.reference_size})"


# The AICity reference's AutoAugment fills what rotations and shears uncover with grey (its fillcolor).
AUTOAUGMENT_FILL = (128, 128, 128)


def autoaugment_probability(progress: float, epochs: int) -> float:
    """The probability of the AutoAugment view after `progress` epochs (fractional) of a run that anneals it over
    `epochs`: 1 at the start, falling linearly to 0 at `epochs`, 0 after.

    The AICity reference (--autoaug) keeps gamma, 0 at the start and raised by 1 / (batches of the whole
    training) after every batch, and takes the batch's AutoAugment view when a uniform draw exceeds gamma: the
    probability 1 - gamma falls linearly per iteration from 1 to 0 over all of training.
    """
    return min(1.0, max(0.0, 1.0 - progress / epochs))


class AnnealedAutoAugment:
    """`transform` of the image, preceded with probability autoaugment_probability(progress, epochs) by
    torchvision's ImageNet AutoAugment policy (T.AutoAugment(AutoAugmentPolicy.IMAGENET), filled grey), as the
    AICity reference prepends its ImageNet policy to the training transform.

    `progress` (epochs done, fractional) is set per sample by the train loader (data.loaders.SeededSamples) from
    the epoch the trainer gives the sampler and the sample's place in the epoch, so it is right in every worker
    process and after a resume. The coin and the policy draw from torch's generator, which the loader seeds per
    sample. Each image draws its own coin (the reference: one per batch).
    """

    def __init__(self, transform: Transform, epochs: int, fill: tuple[int, ...] = AUTOAUGMENT_FILL) -> None:
        if epochs < 1:
            raise ConfigError(f"data.autoaugment_epochs={epochs}: the AutoAugment view anneals over at least 1 epoch")
        self.transform, self.epochs = transform, epochs
        self.policy = T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, fill=list(fill))
        self.progress = 0.0

    def set_progress(self, progress: float) -> None:
        self.progress = progress

    @property
    def probability(self) -> float:
        return autoaugment_probability(self.progress, self.epochs)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if torch.rand(()).item() < self.probability:
            image = self.policy(image)
        return self.transform(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epochs={self.epochs}, policy={self.policy}, transform={self.transform})"


def _to_normalised_tensor() -> list[Callable]:
    return [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def eval_transform(height: int, width: int) -> Transform:
    """Resize and normalise, no flip (every recipe's test transform)."""
    return T.Compose([T.Resize((height, width)), *_to_normalised_tensor()])


@TRANSFORM_RECIPES.register("top_db_net")
def top_db_net(height: int, width: int, *, train: bool) -> Transform:
    """Resize, flip, Random2DTranslation, normalise, RandomErasing (docs/specs/top-db-net.md section 7)."""
    if not train:
        return eval_transform(height, width)
    return T.Compose([T.Resize((height, width)), T.RandomHorizontalFlip(0.5), Random2DTranslation(height, width),
                      *_to_normalised_tensor(), RandomErasing()])


@TRANSFORM_RECIPES.register("bdb")
def bdb(height: int, width: int, *, train: bool) -> Transform:
    """BDB: resize, flip, normalise, Cutout 64x64 at 384x128 (scaled to other sizes), no crop."""
    if not train:
        return eval_transform(height, width)
    return T.Compose([T.Resize((height, width)), T.RandomHorizontalFlip(0.5), *_to_normalised_tensor(),
                      Cutout(reference_size=(384, 128))])


def build_transforms(height: int, width: int, *, train: bool, recipe: str = "top_db_net",
                     autoaugment_epochs: int = 0) -> Transform:
    """The train or test transform of a registered recipe (see TRANSFORM_RECIPES.names()); for training with
    autoaugment_epochs > 0, with the AnnealedAutoAugment view over that many epochs."""
    transform = TRANSFORM_RECIPES.get(recipe)(height, width, train=train)
    return AnnealedAutoAugment(transform, autoaugment_epochs) if train and autoaugment_epochs else transform
