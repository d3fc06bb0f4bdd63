"""The ablation recipes do what the reference's configs do: its no-reg configs never set top_drop_epoch, so the
drop stream uses random Batch DropBlock for the whole schedule (docs/specs/top-db-net.md sections 3-5); Top DropBlock is
the option model.options.top_drop_epoch."""
from __future__ import annotations

import pytest
import torch

from reidkit.config import PACKAGED_CONFIGS, load_config
from reidkit.models import build_model

NO_REG = sorted(p.name for p in (PACKAGED_CONFIGS / "top_db_net_no_reg").glob("*.yaml"))


def _recipe_model(recipe: str, overrides=()):
    cfg = load_config(recipe, overrides)
    torch.manual_seed(0)
    # The recipe's model and options on a small backbone.
    model = build_model(cfg.model.name, num_classes=10, backbone="resnet18", pretrained=None, **cfg.model.options)
    return cfg, model.train()


def _top_dropblock_epochs(cfg, model) -> list[int]:
    switched = []
    for epoch in range(cfg.train.epochs):
        model.set_epoch(epoch)
        if model.drop_top:
            switched.append(epoch)
    return switched


@pytest.mark.parametrize("name", NO_REG)
def test_no_reg_recipe_never_switches_to_top_dropblock(name):
    cfg, model = _recipe_model(f"configs/top_db_net_no_reg/{name}")
    assert cfg.train.epochs == 400 and _top_dropblock_epochs(cfg, model) == []
    # At the last epoch the drop is still the random block the whole batch shares.
    x = torch.randn(6, 3, 128, 64)
    mask = model.drop_mask(x)
    assert bool((mask == mask[:1]).all()) and bool((mask == 0).any())


def test_top_dropblock_is_the_no_reg_option_and_the_top_db_net_default():
    cfg, model = _recipe_model("configs/top_db_net_no_reg/market1501.yaml", ["model.options.top_drop_epoch=0"])
    assert _top_dropblock_epochs(cfg, model) == list(range(400))
    cfg, model = _recipe_model("configs/top_db_net/market1501.yaml")
    assert _top_dropblock_epochs(cfg, model) == list(range(400))
    masks = model.drop_mask(torch.randn(6, 3, 128, 64))
    assert not bool((masks == masks[:1]).all())  # Top DropBlock: each sample its own rows
