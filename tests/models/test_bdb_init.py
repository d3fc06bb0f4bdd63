"""The bdb model's head initialisation: BDB's own weights_init_kaiming (the bdb recipe) or the Top-DB-Net repository's
init of its `bdnet` (the baseline recipe), docs/specs/top-db-net.md sections 1 and 5."""
from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

from reidkit.config import load_config
from reidkit.errors import ReidkitError
from reidkit.models import build_model

NUM_CLASSES = 50


def _bdb(head_init: str):
    torch.manual_seed(0)
    return build_model("bdb", num_classes=NUM_CLASSES, backbone="resnet18", pretrained=None, head_init=head_init)


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std())


def test_bdb_head_init_is_bdb_weights_init_kaiming():
    model = _bdb("bdb")
    # Linear: Kaiming-normal over fan_out (the output size), gain sqrt(2); conv: over fan_in.
    assert _std(model.global_classifier.weight) == pytest.approx(math.sqrt(2 / NUM_CLASSES), rel=0.05)
    assert _std(model.drop_classifier.weight) == pytest.approx(math.sqrt(2 / NUM_CLASSES), rel=0.05)
    assert _std(model.drop_reduction[0].weight) == pytest.approx(math.sqrt(2 / 1024), rel=0.05)
    conv = model.global_reduction[0]
    assert _std(conv.weight) == pytest.approx(math.sqrt(2 / conv.weight[0].numel()), rel=0.05)
    for bn in (model.global_reduction[1], model.drop_reduction[1]):  # BN weight N(1, 0.02), bias 0
        assert float(bn.weight.detach().mean()) == pytest.approx(1.0, abs=0.005)
        assert _std(bn.weight) == pytest.approx(0.02, rel=0.2)
        assert not bn.bias.any()
    for layer in (model.global_classifier, model.drop_classifier, model.drop_reduction[0], conv):
        assert not layer.bias.any()
    # The drop branch's Bottleneck keeps PyTorch's default init (uniform, std 1 / sqrt(3 fan_in)).
    conv1 = model.bottleneck.conv1.weight
    assert _std(conv1) == pytest.approx(1 / math.sqrt(3 * conv1[0].numel()), rel=0.05)


def test_bdb_head_init_top_db_net_is_the_reference_bdnet_init():
    model = _bdb("top_db_net")
    assert _std(model.global_classifier.weight) == pytest.approx(0.01, rel=0.05)
    assert _std(model.drop_reduction[0].weight) == pytest.approx(0.01, rel=0.05)
    assert bool((model.drop_reduction[1].weight == 1).all())
    # The bottleneck too: Kaiming-normal over fan_out.
    conv1 = model.bottleneck.conv1.weight
    assert _std(conv1) == pytest.approx(math.sqrt(2 / conv1.shape[0]), rel=0.05)


def test_recipes_choose_their_reference_init():
    with contextlib.redirect_stdout(io.StringIO()):
        chosen = {recipe: load_config(f"configs/{recipe}/market1501.yaml").model.options["head_init"]
                  for recipe in ("bdb", "baseline")}
    assert chosen == {"bdb": "bdb", "baseline": "top_db_net"}


def test_unknown_head_init_names_the_choices():
    with pytest.raises(ReidkitError, match="unknown bdb head init 'kaiming'.*bdb, top_db_net"):
        _bdb("kaiming")
