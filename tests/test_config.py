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


@pytest.mark.parametrize("key, registry", [
    ("optim.name", "reidkit.engine.optim:OPTIMIZERS"), ("schedule.name", "reidkit.engine.optim:SCHEDULES"),
    ("data.sampler", "reidkit.data.samplers:SAMPLERS"), ("train.amp", "reidkit.utils.amp:AMP_MODES"),
    ("loss.metric", "reidkit.losses.miners:METRICS"), ("test.metric", "reidkit.metrics.distance:METRICS"),
    ("data.frame_order", "reidkit.data.video.sampling:FRAME_ORDERS"),
])
def test_name_fields_accept_exactly_their_registry(key, registry):
    import importlib

    module, attribute = registry.split(":")
    names = getattr(importlib.import_module(module), attribute).names()
    for name in names:
        assert getattr(getattr(load_config(None, [f"{key}={name}"]), key.split(".")[0]), key.split(".")[1]) == name
    with pytest.raises(ConfigError) as error:
        load_config(None, [f"{key}=nonesuch"])
    assert f"{key}='nonesuch': expected one of {', '.join(map(repr, names))}" in str(error.value)


def test_balanced_sampler_takes_any_batch_size_identity_needs_p_x_k():
    balanced = ["data.name=synthetic", "data.sampler=balanced", "train.batch_size=6", "data.num_instances=4"]
    check_config(load_config(None, balanced))
    with pytest.raises(ConfigError, match="train.batch_size=6 must be a multiple of data.num_instances=4"):
        check_config(load_config(None, balanced[:1] + balanced[2:]))


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


def _numeric(tp) -> bool:
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return tp in (int, float) or any(_numeric(a) for a in args)


def test_every_number_has_its_bounds_beside_it_and_its_default_is_within_them():
    import dataclasses
    import typing

    from reidkit.config import SECTIONS

    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            check = f.metadata["check"]
            if _numeric(hints[f.name]):
                assert check is not None, f"{section}.{f.name} has no bounds"
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            if check is not None and default is not None:
                assert check(default) is None, f"{section}.{f.name}: default {default!r} outside its bounds"


@pytest.mark.parametrize("override, accepted", [
    ("schedule.gamma=1", True), ("schedule.gamma=0", False), ("schedule.gamma=-0.5", False),
    ("schedule.gamma=.inf", False), ("optim.lr=1e-8", True), ("optim.lr=0", False), ("optim.lr=.nan", False),
    ("optim.weight_decay=0", True), ("optim.weight_decay=-1e-4", False), ("loss.margin=0", True),
    ("loss.margin=-0.1", False), ("loss.label_smooth=1", False), ("test.lambda_value=0", True),
    ("test.lambda_value=1", True), ("test.lambda_value=1.01", False), ("test.k1=1", True), ("test.k2=0", False),
    ("test.maskthr=1", True), ("test.maskthr=-0.1", False), ("test.topk=0", False), ("test.vis_queries=null", True),
    ("test.vis_queries=-1", False), ("train.seed=0", True), ("train.seed=-1", False), ("data.width=8", False),
    ("optim.momentum=1.5", False), ("optim.betas=[0.9]", False), ("schedule.milestones=[-1]", False),
    ("loss.weights={a/b: 0.5}", True), ("loss.weights={a/b: .nan}", False), ("output.dir=''", False),
])
def test_bounds_accept_and_refuse(override, accepted):
    if accepted:
        load_config(None, [override])
    else:
        with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.") + "="):
            load_config(None, [override])


def test_bounds_hold_for_files_and_stored_configs(tmp_path):
    from reidkit.config import config_from_dict

    path = tmp_path / "bad.yaml"
    path.write_text("schedule:\n  gamma: -0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: schedule.gamma=-0.1: expected a value in \(0, 1\]"):
        load_config(path)
    with pytest.raises(ConfigError, match="stored: optim.lr=nan"):
        config_from_dict({"optim": {"lr": float("nan")}}, source="stored")


@pytest.mark.parametrize("override, key, value", [
    ("output.dir=2026-12-01", ("output", "dir"), "2026-12-01"), ("data.root=runs/exp #3", ("data", "root"),
                                                                  "runs/exp #3"),
    ("data.root=0x10", ("data", "root"), "0x10"), ("output.dir=no", ("output", "dir"), "no"),
    ("model.weights=", ("model", "weights"), ""), ("model.pretrained=null", ("model", "pretrained"), None),
    ("model.pretrained=deepsort", ("model", "pretrained"), "deepsort"), ("train.device=cuda:1", ("train", "device"),
                                                                         "cuda:1"),
])
def test_string_keys_take_override_text_as_written(override, key, value):
    cfg = load_config(None, [override])
    assert getattr(getattr(cfg, key[0]), key[1]) == value


def test_string_keys_in_a_file_keep_their_text(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("output:\n  dir: 2026-12-01\ndata:\n  root: 0x10\n  height: 0x40\nmodel:\n  weights: no\n"
                    "  pretrained: null\n")
    cfg = load_config(path)
    assert (cfg.output.dir, cfg.data.root, cfg.model.weights, cfg.model.pretrained) == ("2026-12-01", "0x10", "no",
                                                                                        None)
    assert cfg.data.height == 64  # numbers are still read as YAML numbers
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml").to_dict() == cfg.to_dict()


def test_data_option_typo_is_caught_before_any_work():
    cfg = load_config("configs/top_db_net/market1501.yaml", ["data.options={verify_image: true}"])
    with pytest.raises(ConfigError, match="did you mean 'data.options.verify_images'"):
        check_config(cfg)
    check_config(load_config(None, ["data.name=synthetic", "data.options={num_ids: 4, skip_bad_images: true}"]))


def test_quotes_around_a_string_value_are_removed():
    cfg = load_config(None, ["output.dir='2026-12-01'", 'data.root="a b"', "model.weights=''"])
    assert (cfg.output.dir, cfg.data.root, cfg.model.weights) == ("2026-12-01", "a b", "")


def test_fixbase_with_a_model_class_without_backbone_is_refused_at_config_time():
    from torch import nn

    from reidkit.models import MODELS

    class PlainNet(nn.Module):  # registered by a user, not a ReidModel: nothing named `backbone` to freeze
        def __init__(self, num_classes: int, **_: object) -> None:
            super().__init__()
            self.fc = nn.Linear(4, num_classes)

    MODELS.register("plain_net_without_backbone")(PlainNet)
    try:
        cfg = load_config(None, ["model.name=plain_net_without_backbone", "train.fixbase_epochs=2"])
        with pytest.raises(ConfigError, match=r"train.fixbase_epochs=2: model.name='plain_net_without_backbone' "
                                              r"\(PlainNet\) is not a reidkit ReidModel"):
            check_config(cfg)
        check_config(load_config(None, ["model.name=plain_net_without_backbone"]))  # no freezing asked: fine
        check_config(load_config(None, ["train.fixbase_epochs=2"]))  # the default model has a backbone
    finally:
        MODELS._entries.pop("plain_net_without_backbone")
