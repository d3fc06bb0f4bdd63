"""Loss values on small hand-computed cases, the batch-hard miner, and the criterion built from a model's
declaration."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidkit.errors import ConfigError, RegistryError
from reidkit.losses import (
    LOSSES,
    BatchHardMiner,
    CrossEntropyLabelSmooth,
    TripletLoss,
    build_criterion,
    pairwise_distance,
)
from reidkit.models import ModelOutput, Stream, build_model

PIDS = torch.tensor([0, 0, 1, 1])
LINE = torch.tensor([[0.0], [2.0], [3.0], [7.0]])  # 1-D points: d01=2 d02=3 d03=7 d12=1 d13=5 d23=4


def test_cross_entropy_label_smoothing_hand_computed():
    logits = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))  # p = (1/4, 1/2, 1/4)
    # target (1/30, 28/30, 1/30): loss = 2 * (1/30) * ln 4 + (28/30) * ln 2 = (32/30) ln 2
    loss = CrossEntropyLabelSmooth(0.1)(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(32 / 30 * math.log(2), rel=1e-6)


def test_cross_entropy_without_smoothing_is_plain_ce_and_averages_batch():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]])
    pids = torch.tensor([0, 1])
    assert CrossEntropyLabelSmooth(0.0)(logits, pids).item() == pytest.approx(F.cross_entropy(logits, pids).item())


def test_cross_entropy_rejects_pids_outside_classifier():
    with pytest.raises(ValueError, match=r"0\.\.2 .*3 outputs.*got 0\.\.5"):
        CrossEntropyLabelSmooth()(torch.zeros(2, 3), torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="epsilon must be in"):
        CrossEntropyLabelSmooth(1.5)


def test_miner_finds_hardest_positive_and_negative():
    mined = BatchHardMiner()(LINE, PIDS)
    assert mined.dist_ap.tolist() == pytest.approx([2, 2, 4, 4], abs=1e-5)
    assert mined.dist_an.tolist() == pytest.approx([3, 1, 1, 5], abs=1e-5)
    assert mined.positive.tolist() == [1, 0, 3, 2]
    assert mined.negative.tolist() == [2, 2, 1, 1]


def test_triplet_hard_margin_hand_computed():
    # relu(d_ap - d_an + 0.3): anchors 0..3 -> 0, 1.3, 3.3, 0 -> mean 1.15
    assert TripletLoss(margin=0.3)(LINE, PIDS).item() == pytest.approx(1.15, abs=1e-5)


def test_triplet_soft_margin_hand_computed():
    expected = (2 * math.log1p(math.exp(-1)) + math.log1p(math.exp(1)) + math.log1p(math.exp(3))) / 4
    assert TripletLoss(soft_margin=True)(LINE, PIDS).item() == pytest.approx(expected, abs=1e-5)


def test_triplet_cosine_distance_hand_computed():
    s = 1 / math.sqrt(2)
    x = torch.tensor([[1.0, 0.0], [3 * s, 3 * s], [0.0, 2.0], [-1.0, 0.0]])  # lengths differ: cosine ignores them
    # d01 = 1 - s, d02 = 1, d03 = 2, d12 = 1 - s, d13 = 1 + s, d23 = 1
    dist = pairwise_distance(x, "cosine")
    assert dist[0, 1].item() == pytest.approx(1 - s, abs=1e-6) and dist[1, 3].item() == pytest.approx(1 + s, abs=1e-6)
    # anchors: 0 -> 0; 1 -> (1-s) - (1-s) + 0.3; 2 -> 1 - (1-s) + 0.3; 3 -> 0
    assert TripletLoss(0.3, metric="cosine")(x, PIDS).item() == pytest.approx((0.6 + s) / 4, abs=1e-5)


def test_euclidean_distance_matches_cdist_and_has_finite_gradient_at_zero():
    x = torch.randn(5, 3, dtype=torch.float64)
    off_diagonal = ~torch.eye(5, dtype=torch.bool)
    assert torch.allclose(pairwise_distance(x)[off_diagonal], torch.cdist(x, x)[off_diagonal])
    y = torch.ones(2, 3, requires_grad=True)  # identical points: distance 0
    TripletLoss(0.3)(torch.cat([y, y + 1]), PIDS).backward()
    assert torch.isfinite(y.grad).all()


def test_triplet_needs_two_identities():
    with pytest.raises(ValueError, match="at least two identities.*pid 3"):
        TripletLoss()(torch.randn(3, 4), torch.tensor([3, 3, 3]))
    with pytest.raises(ConfigError, match="unknown triplet distance metric 'manhattan'"):
        TripletLoss(metric="manhattan")


def _fake_output(streams: list[str], classes: int = 2) -> ModelOutput:
    logits = torch.log(torch.tensor([[3.0, 1.0], [1.0, 1.0], [1.0, 3.0], [1.0, 1.0]]))
    return ModelOutput({name: Stream(logits, LINE * (i + 1)) for i, name in enumerate(streams)})


def test_top_db_net_criterion_sums_triplet_and_ce_of_three_streams():
    model = build_model("top_db_net", num_classes=2, backbone="resnet18")
    criterion = build_criterion(model)
    total, parts = criterion(_fake_output(["global", "drop", "reg"]), PIDS)
    assert list(parts) == [f"{s}/{l}" for s in ("global", "drop", "reg") for l in ("triplet", "ce")]
    # stream i has the LINE distances scaled by i + 1: relu((i+1)*(2-1) + .3) + relu((i+1)*(4-1) + .3) over 4
    for i, s in enumerate(("global", "drop", "reg")):
        assert parts[f"{s}/triplet"] == pytest.approx(((i + 1) * 4 + 0.6) / 4, abs=1e-5)
    ce = CrossEntropyLabelSmooth(0.1)(_fake_output(["g"])["g"].logits, PIDS).item()
    assert parts["drop/ce"] == pytest.approx(ce)
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-6)


def test_bdb_declares_soft_margin_and_options_override():
    model = build_model("bdb", num_classes=2, backbone="resnet18")
    out = _fake_output(["global", "drop"])
    _, soft = build_criterion(model)(out, PIDS)
    assert soft["global/triplet"] == pytest.approx(TripletLoss(soft_margin=True)(LINE, PIDS).item(), abs=1e-6)
    _, hard = build_criterion(model, soft_margin=False, margin=0.5)(out, PIDS)
    assert hard["global/triplet"] == pytest.approx(TripletLoss(margin=0.5)(LINE, PIDS).item(), abs=1e-6)


def test_criterion_weights_and_errors():
    model = build_model("bot", num_classes=2, backbone="resnet18")
    total, parts = build_criterion(model, weights={"global/ce": 0.0})(_fake_output(["global"]), PIDS)
    assert total.item() == pytest.approx(parts["global/triplet"])
    with pytest.raises(ConfigError, match=r"\['drop/ce'\] match no declared term"):
        build_criterion(model, weights={"drop/ce": 2.0})
    with pytest.raises(ConfigError, match=r"unknown loss option\(s\) \['margn'\]"):
        build_criterion(model, margn=0.2)
    with pytest.raises(KeyError, match="no stream 'global'"):
        build_criterion(model)(_fake_output(["drop"]), PIDS)
    with pytest.raises(TypeError, match="train-mode ModelOutput"):
        build_criterion(model)(torch.zeros(4, 3), PIDS)
    with pytest.raises(RegistryError, match="unknown loss 'arcface'"):
        LOSSES.get("arcface")


def test_criterion_backpropagates_through_a_real_model():
    model = build_model("top_db_net_no_drop", num_classes=2, backbone="resnet18").train()
    total, _ = build_criterion(model)(model(torch.randn(4, 3, 64, 32)), PIDS)
    total.backward()
    assert model.global_classifier.weight.grad is not None and model.bottleneck[0].conv1.weight.grad.abs().sum() > 0
