"""Clip sampling, chunked test clips, clip-consistent augmentation and the video loaders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from reidkit.data.base import build_dataset
from reidkit.data.transforms import build_transforms
from reidkit.data.video import (ClipTransform, VideoChunkDataset, VideoClipDataset, build_video_test_loader,
                                build_video_train_loader, chunk_indices, train_clip_indices)
from reidkit.engine.evaluator import Features, extract_features
from reidkit.errors import ConfigError

from .replicas import make_mars


def test_train_clip_start_range_and_padding():
    rng = torch.Generator().manual_seed(0)
    starts = {train_clip_indices(10, 4, rng)[0] for _ in range(400)}
    assert starts == set(range(6))  # [0, N - T - 1]: the last full start (6) is never drawn, as in the reference
    clip = train_clip_indices(10, 4, rng)
    assert clip == list(range(clip[0], clip[0] + 4))
    assert train_clip_indices(5, 4, rng) == [0, 1, 2, 3]
    assert train_clip_indices(3, 4, rng) == [0, 1, 2, 0]  # repeated cyclically
    assert train_clip_indices(1, 4, rng) == [0, 0, 0, 0]


def test_test_chunks_cover_the_tracklet_in_order():
    assert chunk_indices(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert chunk_indices(8, 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert chunk_indices(3, 4) == [[0, 1, 2, 0]]
    capped = chunk_indices(40, 4, max_chunks=4)  # 10 chunks, evenly spaced 0, 3, 6, 9
    assert [c[0] for c in capped] == [0, 12, 24, 36]
    assert chunk_indices(40, 4, max_chunks=4) == capped  # deterministic


def _random_frame_transform():
    return T.Compose([T.RandomHorizontalFlip(0.5), T.RandomCrop((6, 6)), T.PILToTensor()])


def _asymmetric_frame() -> Image.Image:
    return Image.frombytes("L", (8, 8), bytes(range(64))).convert("RGB")


def test_clip_transform_shares_random_draws_within_a_clip():
    torch.manual_seed(0)
    frames = [_asymmetric_frame()] * 4
    shared = ClipTransform(_random_frame_transform())
    clips = [shared(frames) for _ in range(20)]
    assert all(torch.equal(c[0], c[t]) for c in clips for t in range(4))  # one draw per clip
    assert len({c[0].numpy().tobytes() for c in clips}) > 1  # but different draws across clips
    independent = ClipTransform(_random_frame_transform(), per_frame=True)
    assert any(not torch.equal(c[0], c[t]) for c in (independent(frames) for _ in range(20)) for t in range(4))


def test_clip_dataset_items(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    transform = build_transforms(64, 32, train=True, recipe="asta")
    clips = VideoClipDataset(data.train, transform, 4, attributes=data.attributes["train"],
                             schema=data.attribute_schema)
    item = clips[2]  # 2 frames: padded to 4
    assert item["img"].shape == (4, 3, 64, 32)
    assert item["pid"] == 1 and item["camid"] == 0 and item["path"].endswith("0002C1T0003F001.jpg")
    assert item["attributes"]["irrelevant"].shape == (25,) and item["attributes"]["relevant"].shape == (41,)
    with pytest.raises(ConfigError, match="seq_len"):
        VideoClipDataset(data.train, transform, 0)


def test_chunk_dataset_pools_chunk_features_per_tracklet(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    chunks = VideoChunkDataset(data.gallery, build_transforms(64, 32, train=False, recipe="asta"), 2)
    # gallery tracklets have 4, 3 and 2 frames: 2 + 2 + 1 chunks of 2
    assert [t for t, _ in chunks.chunks] == [0, 0, 1, 1, 2]
    assert chunks[3]["tracklet"] == 1 and chunks[3]["img"].shape == (2, 3, 64, 32)
    features = torch.tensor([[1.0, 0], [3, 0], [0, 2], [0, 4], [5, 5]])
    assert torch.equal(chunks.pool(features), torch.tensor([[2.0, 0], [0, 3], [5, 5]]))
    with pytest.raises(ValueError, match="4 chunks"):
        chunks.pool(features[:4])
    per_chunk = Features(features, np.array([3, 3, 4, 4, 0]), np.array([1, 1, 3, 3, 4]), ["x"] * 5)
    pooled = chunks.pool_features(per_chunk)
    assert pooled.features.shape == (3, 2) and pooled.pids.tolist() == [3, 4, 0] and pooled.camids.tolist() == [1, 3, 4]
    assert pooled.paths[0].endswith("0003C2T0002F001.jpg")


def test_video_loaders(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    train = build_video_train_loader(data, height=64, width=32, batch_size=4, num_instances=2, seq_len=4)
    batch = next(iter(train))
    assert batch["img"].shape == (4, 4, 3, 64, 32)
    assert sorted(batch["pid"].tolist()) == [0, 0, 1, 1]  # P=2 identities x K=2 tracklets
    assert batch["attributes"]["relevant"].shape == (4, 41)
    test = build_video_test_loader(data, "query", height=64, width=32, batch_size=8, seq_len=4)
    batch = next(iter(test))
    assert batch["img"].shape == (2, 4, 3, 64, 32) and batch["tracklet"].tolist() == [0, 1]
    assert "attributes" not in batch  # the second query has no attribute row


def test_extracted_chunk_features_pool_into_tracklet_features(tmp_path):
    """The engine's extract_features on the chunk loader, then pooling: one feature per gallery tracklet."""
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    loader = build_video_test_loader(data, "gallery", height=64, width=32, batch_size=2, seq_len=2)
    model = torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Flatten(1), torch.nn.LazyLinear(3))
    model(next(iter(loader))["img"])
    chunks = extract_features(model, loader)
    tracklets = loader.dataset.pool_features(chunks)
    assert chunks.features.shape == (5, 3) and tracklets.features.shape == (3, 3)
    assert torch.allclose(tracklets.features[0], chunks.features[:2].mean(0))
    assert tracklets.pids.tolist() == [pid for _, pid, _ in data.gallery]
