"""The Top-DB-Net reference implementation's own config files (tests/fixtures/reference_configs: the keys and values of
every file of RQuispeC/top-dropblock's configs/ folder) read as reidkit recipes: each training config resolves, field
by field, to the packaged recipe it reproduces; its test configs to their evaluation settings; every key reidkit
cannot honour is refused in one line naming the file, the key and the value."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from reidkit.config import list_recipes, load_config, resolve_config_path
from reidkit.engine.optim import schedule_factor
from reidkit.errors import ConfigError
from reidkit.reference_config import is_reference_config

FIXTURES = Path(__file__).parent / "fixtures" / "reference_configs"
FAMILIES = {"im_top_bdnet": "top_db_net", "im_nothird_top_bdnet": "top_db_net_no_reg",
            "im_nosecond_top_bdnet": "top_db_net_no_drop", "im_bdnet": "baseline"}
DATASETS = {"": "market1501", "market1501": "market1501", "dukemtmcreid": "dukemtmcreid",
            "cuhk03_det": "cuhk03_detected", "cuhk03_lab": "cuhk03_labeled"}
TRAINING = sorted(p.name for p in FIXTURES.glob("*_train*.yaml"))
# Paths: where the run reads and writes, not what it does.
PATHS = {"data.root", "output.dir"}


def _quiet_load(path, overrides=()):
    with contextlib.redirect_stdout(io.StringIO()):
        return load_config(path, overrides)


def _packaged_recipe(reference_name: str) -> str:
    stem = reference_name.removesuffix(".yaml")
    family, _, dataset = stem.partition("_train")
    return f"configs/{FAMILIES[family]}/{DATASETS[dataset.lstrip('_')]}.yaml"


def _fields(cfg) -> dict[str, object]:
    return {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}


def test_the_fixtures_hold_every_config_of_the_reference():
    # 4 models x (a generic train config, 4 datasets, a test config)
    assert len(list(FIXTURES.glob("*.yaml"))) == 24 and len(TRAINING) == 20


@pytest.mark.parametrize("name", TRAINING)
def test_reference_training_config_is_its_packaged_recipe_field_by_field(name):
    translated = _fields(_quiet_load(FIXTURES / name))
    packaged = _fields(_quiet_load(_packaged_recipe(name)))
    differing = {key: (translated[key], packaged[key]) for key in packaged
                 if key not in PATHS and translated[key] != packaged[key]}
    assert differing == {}
    reference = yaml.safe_load((FIXTURES / name).read_text())
    assert translated["output.dir"] == reference["data"]["save_dir"]
    assert translated["data.root"] == "reid-data"  # the reference's default; --root sets it


@pytest.mark.parametrize("name, expected", [
    ("im_top_bdnet_test.yaml", {"model.name": "top_db_net", "data.name": "cuhk03_detected", "test.rerank": True,
                                "test.visrankactivthr": False, "test.batch_size": 600}),
    ("im_nothird_top_bdnet_test.yaml", {"model.name": "top_db_net_no_reg", "data.name": "market1501",
                                        "test.rerank": False, "test.visrankactivthr": True, "test.topk": 5}),
    ("im_nosecond_top_bdnet_test.yaml", {"model.name": "top_db_net_no_drop", "test.visrankactivthr": True}),
    ("im_bdnet_test.yaml", {"model.name": "bdb", "test.visrankactivthr": True, "test.maskthr": 0.35,
                            "test.metric": "sqeuclidean"}),
])
def test_reference_test_config_translates_its_evaluation(name, expected):
    fields = _fields(_quiet_load(FIXTURES / name))
    reference = yaml.safe_load((FIXTURES / name).read_text())
    assert fields["model.weights"] == reference["model"]["load_weights"]
    assert {key: fields[key] for key in expected} == expected


def test_translation_is_printed_as_one_short_block(capsys):
    load_config(FIXTURES / "im_top_bdnet_train_market1501.yaml")
    out = capsys.readouterr().out
    assert "a Top-DB-Net reference config" in out
    assert "model.name='top_bdnet_neck_botdropfeat_doubot' -> model.name='top_db_net'" in out
    assert "train.lr=1.0 -> optim.lr=0.0005" in out
    assert "loss.dropbatch.top_drop_epoch=0 -> model.options={'top_drop_epoch': 0}" in out
    assert len(out.splitlines()) < 40


def _reference_lr(epoch_index: int, lr: float, stepsize: list[int]) -> float:
    """The reference's warmup_db (torchreid/optim/lr_scheduler.py) times its train.lr, transcribed."""
    ep = epoch_index + 1
    if ep < stepsize[0]:
        value = 1e-4 * (ep // 5 + 1)
    elif ep < stepsize[1]:
        value = 1e-3
    elif ep < stepsize[2]:
        value = 1e-4
    else:
        value = 1e-5
    return lr * value / 2


def test_translated_learning_rate_is_the_reference_schedule_at_every_epoch():
    cfg = _quiet_load(FIXTURES / "im_top_bdnet_train_market1501.yaml")
    factor = schedule_factor(cfg.schedule, cfg.train.epochs)
    for epoch in range(cfg.train.epochs):
        assert cfg.optim.lr * factor(epoch) == pytest.approx(_reference_lr(epoch, 1.0, [50, 200, 300]), rel=1e-9)


def _edited(tmp_path: Path, name: str, **changes: object) -> Path:
    """A copy of a reference config with dotted keys changed (None removes one)."""
    data = yaml.safe_load((FIXTURES / name).read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, fields", [
    ({"train__lr_scheduler": "single_step", "train__stepsize": [20], "train__max_epoch": 70, "train__lr": 3e-4},
     {"schedule.name": "multistep", "schedule.milestones": [20, 40, 60], "optim.lr": 3e-4}),
    ({"train__lr_scheduler": "multi_step", "train__stepsize": [30, 60], "train__gamma": 0.5},
     {"schedule.name": "multistep", "schedule.milestones": [30, 60], "schedule.gamma": 0.5}),
    ({"loss__dropbatch__top_drop_epoch": -2}, {"model.options": {"last_stride": 1, "drop_height_ratio": 0.33,
                                                                 "row_score": "max", "top_drop_epoch": 0}}),
    ({"loss__dropbatch__top_drop_epoch": None}, {"model.options": {"last_stride": 1, "drop_height_ratio": 0.33,
                                                                   "row_score": "max", "top_drop_epoch": None}}),
    ({"loss__dropbatch__weight_b_db_x": 0.5, "loss__triplet__weight_t": 2},
     {"loss.weights": {"reg/ce": 0.5, "global/triplet": 2.0}}),
    ({"loss__softmax__label_smooth": False, "test__dist_metric": "cosine", "model__pretrained": False},
     {"loss.label_smooth": 0.0, "test.metric": "cosine", "model.pretrained": "imagenet"}),
    ({"data__sources": ["market1501", "cuhk03"], "data__targets": ["dukemtmcreid"], "cuhk03__labeled_images": True},
     {"data.sources": ["market1501", "cuhk03_labeled"], "test.targets": ["dukemtmcreid"]}),
    ({"sampler__train_sampler": "RandomIdentitySamplerFast"}, {"data.sampler": "identity_once"}),
    ({"sampler__train_sampler": None}, {"data.sampler": "shuffle"}),  # the reference's default RandomSampler
    ({"cuhk03__use_metric_cuhk03": True, "test__eval_freq": -1}, {"test.protocol": "cuhk03", "test.eval_period": 0,
                                                                   "checkpoint.period": 0}),
])
def test_reference_keys_mean_what_the_reference_does(tmp_path, changes, fields):
    resolved = _fields(_quiet_load(_edited(tmp_path, "im_top_bdnet_train_market1501.yaml", **changes)))
    assert {key: resolved[key] for key in fields} == fields


@pytest.mark.parametrize("changes, message", [
    ({"model__name": "osnet_x1_0"}, r"model.name='osnet_x1_0' .*expected one of top_bdnet_neck_botdropfeat_doubot"),
    ({"data__combineall": True}, r"data.combineall=True .*expected False"),
    ({"data__transforms": ["random_flip"]}, r"data.transforms=\['random_flip'\] .*random_crop"),
    ({"train__lr_scheduler": "cosine"}, r"train.lr_scheduler='cosine' .*expected one of warmup_db"),
    ({"train__stepsize": [40, 200, 300]}, r"train.stepsize=\[40, 200, 300\] .*\[50, first decay"),
    ({"train__optim": "rmsprop"}, r"train.optim='rmsprop' .*expected one of adam, sgd"),
    ({"train__fixbase_epoch": 5}, r"train.fixbase_epoch=5 .*open_layers"),
    ({"test__visactmap": True}, r"test.visactmap=True .*visrankactiv"),
    ({"loss__name": "triplet_dropbatch"}, r"loss.name='triplet_dropbatch' .*trains only with "
                                          r"'triplet_dropbatch_dropbotfeatures'"),
    ({"data__sources": ["grid"]}, r"data.sources=\['grid'\] .*not 'grid'"),
    ({"train__max_epoch": "many"}, r"train.max_epoch='many' .*expected an integer"),
    ({"train__max_epochs": 10}, r"'train.max_epochs' is not a key .*did you mean 'train.max_epoch'"),
])
def test_a_key_reidkit_cannot_honour_is_refused_naming_file_key_and_value(tmp_path, changes, message):
    path = _edited(tmp_path, "im_top_bdnet_train_market1501.yaml", **changes)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_bdnet_has_no_top_dropblock_to_switch_to(tmp_path):
    path = _edited(tmp_path, "im_bdnet_train_market1501.yaml", loss__dropbatch__top_drop_epoch=5)
    with pytest.raises(ConfigError, match=r"loss.dropbatch.top_drop_epoch=5 .*random Batch DropBlock only"):
        load_config(path)


def test_a_file_mixing_both_schemas_is_refused(tmp_path):
    path = _edited(tmp_path, "im_top_bdnet_train_market1501.yaml", optim={"lr": 0.1})
    with pytest.raises(ConfigError, match=r"mixes reidkit keys \(optim.lr\) and keys of the Top-DB-Net reference"):
        load_config(path)


@pytest.mark.parametrize("recipe", list_recipes())
def test_no_packaged_recipe_is_taken_for_a_reference_config(recipe):
    from reidkit.config import all_keys

    data = yaml.safe_load(resolve_config_path("configs/" + recipe).read_text())
    assert not is_reference_config(data, set(all_keys()), recipe)
