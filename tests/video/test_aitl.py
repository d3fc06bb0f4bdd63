"""AITL and attribute BCE on hand-computed cases.

Features (2-D) and attribute logits (1-D) of five samples, identities 0, 0, 0, 1, 1:
  f0 = (1, 0), f1 = (0, 1), f2 = (1, 1), f3 = (1, 0), f4 = (-1, 0);  a = 0, 3, 1, 0, 5.
Cosine distances: D(0,1) = 1, D(0,2) = D(1,2) = 1 - 1/sqrt(2) =: c, D(3,4) = 2.
Attribute distances among identity 0: |a0-a1| = 3, |a0-a2| = 1, |a1-a2| = 2.
"""
from __future__ import annotations

import math

import pytest
import torch

from reidkit.errors import ConfigError
from reidkit.losses.aitl import AITLLoss, attribute_hard_mining
from reidkit.losses.attribute import AttributeBCELoss, attribute_bce

C = 1 - 1 / math.sqrt(2)
PIDS = torch.tensor([0, 0, 0, 1, 1])


def features() -> torch.Tensor:
    return torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])


def attributes() -> torch.Tensor:
    return torch.tensor([[0.0], [3.0], [1.0], [0.0], [5.0]])


def test_mining_without_self_picks_other_positives():
    mined = attribute_hard_mining(attributes(), PIDS, include_self=False)
    # anchor 0: candidates 1 (D_A 3), 2 (D_A 1); anchor 1: 0 (3), 2 (2); anchor 2: 0 (1), 1 (2); 3 and 4 see each other
    assert mined.positive.tolist() == [1, 0, 1, 4, 3]
    assert mined.negative.tolist() == [2, 2, 0, 4, 3]
    assert mined.valid.all()


def test_mining_with_self_makes_the_anchor_its_own_closest_positive():
    mined = attribute_hard_mining(attributes(), PIDS, include_self=True)
    assert mined.positive.tolist() == [1, 0, 1, 4, 3]
    assert mined.negative.tolist() == [0, 1, 2, 3, 4]


def test_aitl_paper_setting():
    # anchor 0: D(0,1) - D(0,2) = 1 - c; anchor 1: D(1,0) - D(1,2) = 1 - c; anchor 2: D(2,1) - D(2,0) = 0;
    # anchors 3, 4: p+ = p- so 0.
    loss = AITLLoss(include_self=False)(features(), attributes(), PIDS)
    assert loss.item() == pytest.approx(2 * (1 - C) / 5, abs=1e-6)


def test_aitl_reference_setting_include_self():
    # p- = the anchor itself (D_f = 0): the loss is the mean D_f to the attribute-farthest positive.
    loss = AITLLoss(include_self=True)(features(), attributes(), PIDS)
    assert loss.item() == pytest.approx((1 + 1 + C + 2 + 2) / 5, abs=1e-5)


def test_aitl_margin_applies_to_every_anchor():
    loss = AITLLoss(margin=0.5, include_self=False)(features(), attributes(), PIDS)
    assert loss.item() == pytest.approx((2 * (1 - C + 0.5) + 3 * 0.5) / 5, abs=1e-6)


def test_single_sample_identities_are_left_out_without_self():
    pids = torch.tensor([0, 0, 0, 1, 2])  # identities 1 and 2 have no other positive
    loss = AITLLoss(include_self=False)(features(), attributes(), pids)
    assert loss.item() == pytest.approx(2 * (1 - C) / 3, abs=1e-6)
    alone = AITLLoss(include_self=False)(features()[3:], attributes()[3:], torch.tensor([1, 2]))
    assert alone.item() == 0.0


def test_gradient_reaches_features_only():
    f = features().requires_grad_()
    a = attributes().requires_grad_()
    AITLLoss()(f, a, PIDS).backward()
    assert a.grad is None  # the choice of p+ / p- is not differentiated
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_bad_options_and_shapes_are_reported():
    with pytest.raises(ConfigError, match="margin"):
        AITLLoss(margin=-1)
    with pytest.raises(ConfigError, match="include_self"):
        AITLLoss(include_self="yes")
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        AITLLoss()(features(), attributes()[:3], PIDS)


def test_attribute_bce_by_hand():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    # BCE(0, 1) = log 2; BCE(2, 0) = log(1 + e^2); mean of the two elements
    expected = (math.log(2) + math.log(1 + math.e ** 2)) / 2
    assert attribute_bce(logits, targets).item() == pytest.approx(expected, abs=1e-6)
    groups = AttributeBCELoss()({"irr": logits, "rel": torch.zeros(1, 3)}, {"irr": targets, "rel": torch.ones(1, 3)})
    assert groups.item() == pytest.approx(expected + math.log(2), abs=1e-6)


def test_attribute_bce_reports_missing_groups_and_shapes():
    with pytest.raises(KeyError, match="rel"):
        AttributeBCELoss()({"rel": torch.zeros(1, 2)}, {"irr": torch.zeros(1, 2)})
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        attribute_bce(torch.zeros(2, 3), torch.zeros(2, 4))
