"""Tiny stand-ins for the engine tests: a two-layer re-ID model and an in-memory dataset whose samples draw
random noise (so restoring random states matters), loaded through the real identity sampler."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reidkit.data.samplers import RandomIdentitySampler
from reidkit.models.base import ReidModel
from reidkit.models.outputs import ModelOutput, Stream


class TinyReid(ReidModel):
    loss_spec = {"global": ("triplet", "ce")}
    classifier_names = ("classifier",)

    def __init__(self, num_classes: int = 6, dropout: float = 0.2) -> None:
        super().__init__()
        self.model_name = "tiny"
        self.num_classes = num_classes
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)  # consumes the torch RNG in training
        self.neck = nn.BatchNorm1d(8)
        self.classifier = nn.Linear(8, num_classes)
        self.feature_dim = 8
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def forward(self, x: torch.Tensor):
        t = self.pool(self.backbone(x)).flatten(1)
        f = self.neck(t)
        if not self.training:
            return f
        return ModelOutput({"global": Stream(self.classifier(self.dropout(f)), t)})


class NoisyImages(Dataset):
    """num_ids identities x per_id images of 16x8; each identity has its own colour, plus fresh noise per load."""

    def __init__(self, num_ids: int = 6, per_id: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.base = torch.rand(num_ids, 3, 1, 1, generator=g).expand(num_ids, 3, 16, 8).contiguous()
        self.samples = [(f"img_{p}_{i}.jpg", p, i % 2) for p in range(num_ids) for i in range(per_id)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path, pid, camid = self.samples[index]
        img = self.base[pid] + 0.1 * torch.randn(3, 16, 8)
        return {"img": img, "pid": pid, "camid": camid, "path": path}


def make_loader(seed: int = 0, batch_size: int = 8, num_instances: int = 2) -> DataLoader:
    data = NoisyImages()
    sampler = RandomIdentitySampler(data.samples, batch_size, num_instances, seed=seed)
    return DataLoader(data, batch_size=sampler.batch_size_per_process, sampler=sampler, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))

