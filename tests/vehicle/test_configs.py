"""The vehicle recipes load and name registered datasets, models, recipes and options."""
from pathlib import Path

import pytest

import reidkit.data.vehicle  # noqa: F401  (registration, until reidkit.data imports it)
import reidkit.models.ft_net  # noqa: F401
from reidkit.config import PACKAGED_CONFIGS, load_config
from reidkit.engine.launch import check_config

RECIPES = sorted(p.name for p in (PACKAGED_CONFIGS / "vehicle").glob("*.yaml"))


def test_every_dataset_has_a_recipe():
    assert RECIPES == ["aicity2020_ft_net.yaml", "synthetic_ft_net.yaml", "vehicleid_ft_net.yaml",
                       "veri776_ft_net.yaml"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_valid(name):
    cfg = load_config(f"configs/vehicle/{name}")
    check_config(cfg)
    assert cfg.model.name == "ft_net" and cfg.data.recipe == "vehicle"
    assert cfg.optim.name == "sgd" and cfg.optim.nesterov and cfg.loss.label_smooth == 0.0
    assert cfg.data.height == cfg.data.width  # square vehicle crops
    assert Path(cfg.output.dir).name.startswith("ft_net_")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_as_the_released_command(name):
    """train_2020.py --droprate 0 --autoaug --batchsize 24, plain shuffled loader (docs/specs/vehicle-aicity.md 1)."""
    cfg = load_config(f"configs/vehicle/{name}")
    assert cfg.model.options["droprate"] == 0.0 and cfg.train.batch_size == 24 and cfg.data.sampler == "shuffle"
    assert cfg.data.autoaugment_epochs == cfg.train.epochs  # annealed 1 -> 0 over the whole training
