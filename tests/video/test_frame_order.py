"""data.frame_order: the reference's load-time shuffle of each tracklet's frames (seeded from train.seed, train and
test) against the temporal order; and the samplers a video loader accepts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reidkit.config import load_config
from reidkit.data.base import build_dataset
from reidkit.data.video import build_video_test_loader, build_video_train_loader
from reidkit.data.video.sampling import FRAME_ORDERS, order_frames
from reidkit.engine import builders
from reidkit.engine.launch import RunContext, setup
from reidkit.errors import ConfigError

from .replicas import make_mars

TRACKLETS = [(tuple(f"t{t}_f{i}.jpg" for i in range(n)), t, 0) for t, n in enumerate((9, 12, 3, 1, 20))]


def test_temporal_keeps_the_frames_and_shuffled_permutes_each_tracklet_once():
    assert order_frames(TRACKLETS, "temporal", seed=1, subset="train") == TRACKLETS
    shuffled = order_frames(TRACKLETS, "shuffled", seed=1, subset="train")
    assert [(pid, camid) for _, pid, camid in shuffled] == [(pid, camid) for _, pid, camid in TRACKLETS]
    assert all(sorted(new) == sorted(old) for (new, _, _), (old, _, _) in zip(shuffled, TRACKLETS))
    assert sum(new != old for (new, _, _), (old, _, _) in zip(shuffled, TRACKLETS)) >= 3  # permuted, not sorted
    assert FRAME_ORDERS.names() == ["shuffled", "temporal"]


def test_shuffled_order_depends_on_the_seed_and_subset_alone():
    first = order_frames(TRACKLETS, "shuffled", seed=1, subset="query")
    torch.manual_seed(123)  # neither the global torch nor numpy state moves it: identical after a resume
    np.random.seed(321)
    assert order_frames(TRACKLETS, "shuffled", seed=1, subset="query") == first
    assert order_frames(TRACKLETS, "shuffled", seed=2, subset="query") != first
    assert order_frames(TRACKLETS, "shuffled", seed=1, subset="gallery") != first


def test_unknown_frame_order_is_a_config_error():
    with pytest.raises(ConfigError, match="data.frame_order='random': expected one of 'shuffled', 'temporal'"):
        load_config(None, ["data.frame_order=random"])
    with pytest.raises(ConfigError, match="data.frame_order='random'"):
        order_frames(TRACKLETS, "random", seed=0, subset="train")


def test_clips_and_test_chunks_come_from_the_shuffled_list(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    train = build_video_train_loader(data, height=16, width=16, batch_size=4, num_instances=2, seq_len=2,
                                     frame_order="shuffled", seed=5)
    expected = order_frames(data.train, "shuffled", seed=5, subset="train")
    assert train.dataset.dataset.tracklets == expected and expected != data.train
    query = build_video_test_loader(data, "query", height=16, width=16, batch_size=8, seq_len=2,
                                    frame_order="shuffled", seed=5)
    assert query.dataset.tracklets == order_frames(data.query, "shuffled", seed=5, subset="query")
    # A chunk is consecutive frames of the shuffled list: chunk 0 of tracklet 0 = its first two shuffled frames.
    first = query.dataset[0]
    assert first["path"] == query.dataset.tracklets[0][0][0]
    temporal = build_video_test_loader(data, "query", height=16, width=16, batch_size=8, seq_len=2)
    assert temporal.dataset.tracklets == data.query


def test_the_engine_orders_train_and_test_frames_from_train_seed(tmp_path):
    make_mars(tmp_path / "data")
    cfg = load_config("configs/video/asta_aitl_mars.yaml", [f"data.root={tmp_path / 'data'}", "train.seed=7",
                                                            "train.batch_size=4", "data.num_instances=2",
                                                            "data.workers=0", "train.device=cpu"])
    assert cfg.data.frame_order == "shuffled"
    dataset = build_dataset("mars", root=tmp_path / "data")
    ctx: RunContext = setup(cfg)
    loader = builders.train_loader(cfg, dataset, ctx)
    assert loader.dataset.dataset.tracklets == order_frames(dataset.train, "shuffled", seed=7, subset="train")
    query, gallery = builders.test_loaders(cfg, dataset)
    assert query.dataset.tracklets == order_frames(dataset.query, "shuffled", seed=7, subset="query")
    assert gallery.dataset.tracklets == order_frames(dataset.gallery, "shuffled", seed=7, subset="gallery")


def test_video_loaders_take_identity_samplers_only(tmp_path):
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    common = dict(height=16, width=16, batch_size=4, num_instances=2, seq_len=2)
    with pytest.raises(ConfigError, match="data.sampler='balanced'.*identity, identity_once"):
        build_video_train_loader(data, sampler="balanced", **common)
    # Two training identities, P = 2: identity_once gives floor(2 x 2 / 4) = 1 batch per epoch.
    once = build_video_train_loader(data, sampler="identity_once", **common)
    assert len(once) == 1 and sorted(next(iter(once))["pid"].tolist()) == [0, 0, 1, 1]


def test_the_autoaugment_view_is_refused_for_tracklets(tmp_path):
    make_mars(tmp_path / "data")
    cfg = load_config("configs/video/asta_aitl_mars.yaml", [f"data.root={tmp_path / 'data'}", "train.batch_size=4",
                                                            "data.num_instances=2", "data.workers=0",
                                                            "train.device=cpu", "data.autoaugment_epochs=5"])
    dataset = build_dataset("mars", root=tmp_path / "data")
    with pytest.raises(ConfigError, match=r"data.autoaugment_epochs=5: the AutoAugment view is for image datasets; "
                                          r"MARS holds tracklets: set data.autoaugment_epochs=0"):
        builders.train_loader(cfg, dataset, setup(cfg))
