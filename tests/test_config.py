"""Config: documented defaults, YAML + key=value overrides, errors naming the key, every packaged recipe valid."""
from __future__ import annotations

import pytest
import yaml

from reidkit.config import all_keys, format_defaults, list_recipes, load_config, save_config
from reidkit.engine.launch import check_config
from reidkit.errors import ConfigError


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_packaged_recipe_loads_and_names_existing_parts(recipe):
    cfg = load_config("configs/" + recipe)
    check_config(cfg)


def test_paper_recipes_follow_the_spec():
    top = load_config("configs/top_db_net/market1501.yaml")
    assert (top.model.name, top.data.height, top.data.width, top.train.epochs, top.train.batch_size) == \
        ("top_db_net", 384, 128, 400, 64)
    assert (top.optim.name, top.optim.lr, top.schedule.name, top.loss.margin, top.loss.label_smooth) == \
        ("adam", 5e-4, "warmup_db", 0.3, 0.1)
    bdb = load_config("configs/bdb/market1501.yaml")
    assert (bdb.model.name, bdb.train.batch_size, bdb.data.recipe, bdb.optim.lr) == ("bdb", 128, "bdb", 1e-3)
    for dataset in ("dukemtmcreid", "cuhk03_labeled", "cuhk03_detected"):
        other = load_config(f"configs/top_db_net/{dataset}.yaml")
        assert (other.train.epochs, other.optim.lr, other.schedule.name) == (400, 5e-4, "warmup_db")


def test_every_key_has_a_documented_default():
    text = format_defaults()
    for key in all_keys():
        assert key.split(".")[1] in text, key


def test_overrides_parse_yaml_values_and_win_over_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 7}, "optim": {"lr": 0.1}}))
    cfg = load_config(path, ["optim.lr=3.5e-4", "schedule.milestones=[10, 20]", "model.pretrained=null",
                             "model.options={last_stride: 2}"])
    assert (cfg.train.epochs, cfg.optim.lr, cfg.schedule.milestones) == (7, 3.5e-4, [10, 20])
    assert cfg.model.pretrained is None and cfg.model.options == {"last_stride": 2}


def test_saved_config_reloads_to_the_same_config(tmp_path):
    cfg = load_config("configs/bdb/market1501.yaml", ["train.epochs=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").to_dict() == cfg.to_dict()


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", r"unknown key 'optim.lrr'; did you mean 'optim.lr'"),
    ("trian.epochs=1", r"trian"),
    ("train.epochs=abc", r"train.epochs='abc': expected an integer"),
    ("train.epochs=0", r"train.epochs"),
    ("optim.name=rmsprop", r"optim.name.*'adam'"),
    ("lr", r"'lr'"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/top_db_net/market1501.yaml", [override])


def test_bad_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epohcs: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'train.epohcs'; did you mean 'train.epochs'"):
        load_config(path)
    path.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(path)


def test_model_option_typo_is_caught_before_any_work():
    cfg = load_config("configs/top_db_net/market1501.yaml", ["model.options={top_drop_epoc: 3}"])
    with pytest.raises(ConfigError, match="did you mean 'model.options.top_drop_epoch'"):
        check_config(cfg)
