"""The AICity reference's AutoAugment view (--autoaug): torchvision's ImageNet policy with a probability annealed
from 1 to 0 over training, the progress coming from the epoch the trainer gives the train loader's sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from reidkit.data import build_train_loader
from reidkit.data.loaders import SeededSampler
from reidkit.data.samplers import ShuffledSampler
from reidkit.data.transforms import (AUTOAUGMENT_FILL, AnnealedAutoAugment, autoaugment_probability,
                                     build_transforms)
from reidkit.errors import ConfigError


def reference_probabilities(epochs: int, batches_per_epoch: int) -> list[float]:
    """The reference's schedule, transcribed: gamma starts at 0; each batch takes the AutoAugment view when
    uniform(0, 1) > gamma, then gamma = min(1, gamma + 1 / total_iteration)."""
    total, gamma, out = epochs * batches_per_epoch, 0.0, []
    for _ in range(total):
        out.append(1.0 - gamma)  # P(uniform > gamma)
        gamma = min(1.0, gamma + 1.0 / total)
    return out


def test_probability_falls_linearly_per_iteration_as_the_reference():
    epochs, batches = 6, 7
    ours = [autoaugment_probability(epoch + b / batches, epochs) for epoch in range(epochs) for b in range(batches)]
    np.testing.assert_allclose(ours, reference_probabilities(epochs, batches), atol=1e-9)
    assert autoaugment_probability(0, 80) == 1.0 and autoaugment_probability(40, 80) == 0.5
    assert autoaugment_probability(80, 80) == 0.0 and autoaugment_probability(95, 80) == 0.0


def gradient_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))


def test_the_policy_is_torchvisions_imagenet_autoaugment():
    base = build_transforms(16, 16, train=True, recipe="vehicle")
    annealed = build_transforms(16, 16, train=True, recipe="vehicle", autoaugment_epochs=10)
    assert isinstance(annealed, AnnealedAutoAugment) and isinstance(annealed.policy, T.AutoAugment)
    assert annealed.policy.policy == T.AutoAugmentPolicy.IMAGENET and annealed.policy.fill == list(AUTOAUGMENT_FILL)
    assert build_transforms(16, 16, train=False, recipe="vehicle", autoaugment_epochs=10).__class__ is T.Compose
    image = gradient_image()
    policy = T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, fill=[128, 128, 128])
    for seed in range(5):
        annealed.set_progress(0.0)  # probability 1: policy, then the recipe
        torch.manual_seed(seed)
        out = annealed(image)
        torch.manual_seed(seed)
        torch.rand(())  # the coin
        assert torch.equal(out, base(policy(image)))
        annealed.set_progress(10.0)  # probability 0: the recipe alone
        torch.manual_seed(seed)
        out = annealed(image)
        torch.manual_seed(seed)
        torch.rand(())
        assert torch.equal(out, base(image))


def test_the_view_is_taken_with_the_annealed_probability():
    calls = []

    class Spy:
        def __call__(self, image):
            calls.append(1)
            return image

    annealed = AnnealedAutoAugment(lambda image: image, epochs=4)
    annealed.policy = Spy()
    torch.manual_seed(0)
    for progress, expected in ((1.0, 0.75), (3.0, 0.25)):
        calls.clear()
        annealed.set_progress(progress)
        for _ in range(4000):
            annealed(None)
        assert len(calls) / 4000 == pytest.approx(expected, abs=0.03)
    with pytest.raises(ConfigError, match="data.autoaugment_epochs=0"):
        AnnealedAutoAugment(lambda image: image, epochs=0)


def test_the_sampler_gives_each_sample_its_progress():
    seeded = SeededSampler(ShuffledSampler(8, seed=0), seed=1)
    seeded.set_epoch(3)
    keys = list(seeded)
    assert [progress for _, _, progress in keys] == [3 + p / 8 for p in range(8)]
    assert sorted(index for index, _, _ in keys) == list(range(8))


@pytest.fixture
def samples(tmp_path):
    rng = np.random.default_rng(1)
    out = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        out.append((str(path), i % 2, 0))
    return out


def epoch_images(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return torch.cat([batch["img"] for batch in loader])


def test_worker_processes_follow_the_schedule_and_batches_do_not_depend_on_them(samples):
    common = dict(height=16, width=16, batch_size=4, num_instances=2, recipe="vehicle", seed=0, sampler="shuffle",
                  autoaugment_epochs=2)
    main = build_train_loader(samples, workers=0, **common)
    workers = build_train_loader(samples, workers=2, **common)
    for epoch in (0, 1, 2):  # probabilities 1, 0.5 ... 0.125, 0: a worker stuck at one epoch would differ
        assert torch.equal(epoch_images(main, epoch), epoch_images(workers, epoch))
    resumed = build_train_loader(samples, workers=0, **common)  # a fresh loader starting at epoch 1
    assert torch.equal(epoch_images(resumed, 1), epoch_images(main, 1))
    assert not torch.equal(epoch_images(main, 0), epoch_images(build_train_loader(
        samples, workers=0, **{**common, "autoaugment_epochs": 0}), 0))


def test_a_run_shorter_than_the_anneal_is_warned():
    from reidkit.config import load_config
    from reidkit.engine.run_config import check_config

    check_config(load_config("configs/vehicle/synthetic_ft_net.yaml"))  # 16 and 16: silent
    with pytest.warns(UserWarning, match=r"data.autoaugment_epochs=16 with train.epochs=4: .* ends at 0.75"):
        check_config(load_config("configs/vehicle/synthetic_ft_net.yaml", ["train.epochs=4"]))
