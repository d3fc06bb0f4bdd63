"""The Top-DB-Net reference implementation's own config files, read as reidkit recipes.

The reference (RQuispeC/top-dropblock) runs `main.py --config-file configs/im_top_bdnet_train_market1501.yaml --root
DATA` on a yacs schema (its default_config.py): `model.name: top_bdnet_neck_botdropfeat_doubot`, `train.max_epoch`,
`loss.dropbatch.top_drop_epoch`, `test.dist_metric`, ... `reidkit train --config FILE` accepts such a file as it is:
`translate_if_reference` recognises the schema (keys that only the reference has, none that only reidkit has), fills
in the reference's defaults as yacs does, translates every key to the reidkit setting it means (one table,
`TRANSLATORS`: reference key -> translator), prints the translation as one short block, and refuses a key or
value it cannot honour with one line naming the file, the key and the value. What each reference model and
option means is in docs/specs/top-db-net.md sections 2-9; the packaged recipes (configs/top_db_net*, configs/baseline)
are the translations of the reference's configs (tests/test_reference_config.py checks them field by field).
"""
from __future__ import annotations

import copy
import difflib
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from reidkit.errors import ConfigError

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# The reference's yacs defaults (default_config.py: get_default_config), section by section; nested mappings are
# yacs sub-nodes (loss.softmax.label_smooth). A file may only set these keys, as yacs' merge_from_file enforces.
REFERENCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"name": "resnet50", "pretrained": True, "load_weights": "", "resume": ""},
    "data": {"type": "image", "root": "reid-data", "sources": ["market1501"], "targets": ["market1501"],
             "workers": 10, "split_id": 0, "height": 256, "width": 128, "combineall": False,
             "transforms": ["random_flip"], "norm_mean": IMAGENET_MEAN, "norm_std": IMAGENET_STD, "save_dir": "log"},
    "market1501": {"use_500k_distractors": False},
    "cuhk03": {"labeled_images": False, "classic_split": False, "use_metric_cuhk03": False},
    "sampler": {"train_sampler": "RandomSampler", "num_instances": 4},
    "video": {"seq_len": 15, "sample_method": "evenly", "pooling_method": "avg"},
    "train": {"optim": "adam", "lr": 0.0003, "weight_decay": 5e-4, "max_epoch": 60, "start_epoch": 0,
              "batch_size": 32, "fixbase_epoch": 0, "open_layers": ["classifier"], "staged_lr": False,
              "new_layers": ["classifier"], "base_lr_mult": 0.1, "lr_scheduler": "single_step", "stepsize": [20],
              "gamma": 0.1, "print_freq": 20, "seed": 1},
    "sgd": {"momentum": 0.9, "dampening": 0.0, "nesterov": False},
    "rmsprop": {"alpha": 0.99},
    "adam": {"beta1": 0.9, "beta2": 0.999},
    "loss": {"name": "softmax", "softmax": {"label_smooth": True},
             "triplet": {"margin": 0.3, "weight_t": 1.0, "weight_x": 1.0, "weight_n": 1.0, "weight_x_parts": 1.0,
                         "weight_t_parts": 1.0},
             "dropbatch": {"weight_db_t": 1.0, "weight_db_x": 1.0, "weight_b_db_t": 1.0, "weight_b_db_x": 1.0,
                           "top_drop_epoch": -1},
             "npairs": {"margin_sasc": 0.3, "margin_sadc": 0.2, "margin_dasc": 0.4},
             "separate": {"weight_separate": 1.0}},
    "test": {"batch_size": 100, "dist_metric": "euclidean", "normalize_feature": False, "ranks": [1, 5, 10, 20],
             "evaluate": False, "eval_freq": -1, "start_eval": 0, "rerank": False, "visrank": False,
             "visrankactiv": False, "visrank_topk": 10, "visactmap": False, "vispartmap": False,
             "visrankactivthr": False, "maskthr": 0.7, "visdrop": False, "visdroptype": "top"},
}

# Two of the reference's test configs (im_nosecond_/im_nothird_top_bdnet_test.yaml) indent `loss:` under `sampler:`,
# which makes `sampler.loss` (empty) and `sampler.name`; the reference's yacs refuses them. They are read here as
# the loss.name they were meant to be.
MISINDENTED = {"sampler.loss": None, "sampler.name": "triplet_dropbatch"}


def _flatten(values: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(schema.get(key), dict) and isinstance(value, Mapping):
            yield from _flatten(value, schema[key], dotted + ".")
        else:
            yield dotted, value


DEFAULTS: dict[str, Any] = dict(_flatten(REFERENCE_DEFAULTS, REFERENCE_DEFAULTS))


@dataclass
class Translation:
    """What one reference key sets in reidkit (dotted keys; mappings are merged) and, where it sets nothing or
    does more than the key says, why."""

    settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""


class ReferenceConfig:
    """A reference config: its yacs defaults with the file's values on top, and the keys the file sets."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.source = source
        self.given = dict(_flatten(data, REFERENCE_DEFAULTS))
        self.values = {**DEFAULTS, **self.given}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def refuse(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}={self.values[key]!r} (a Top-DB-Net reference config key): {expected}")


Translator = Callable[[Any, ReferenceConfig], Translation]


class Refused(Exception):
    """Raised by a translator: the value cannot be honoured; the message says what can."""


# ------------------------------------------------------------------------------------------ reference models


@dataclass(frozen=True)
class ReferenceModel:
    """A model of the reference's torchreid/models/bdnet.py as reidkit builds it.

    `loss`: the only loss.name its training forward accepts; `streams`: the reference's loss-weight group (''
    for weight_t/weight_x, 'db', 'b_db') -> the reidkit stream it weighs; `top_drop`: what
    loss.dropbatch.top_drop_epoch does to it: 'option' (model.options.top_drop_epoch), 'none' (no drop stream)
    or 'unsupported' (the reference would switch it, reidkit's model cannot)."""

    name: str
    loss: str
    options: dict[str, Any]
    streams: dict[str, str]
    top_drop: str
    settings: dict[str, Any] = field(default_factory=dict)


_DROP_OPTIONS = {"last_stride": 1, "drop_height_ratio": 0.33, "row_score": "max"}
REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "top_bdnet_neck_botdropfeat_doubot": ReferenceModel(
        "top_db_net", "triplet_dropbatch_dropbotfeatures", _DROP_OPTIONS,
        {"": "global", "db": "drop", "b_db": "reg"}, "option"),
    "top_bdnet_neck_doubot": ReferenceModel(
        "top_db_net_no_reg", "triplet_dropbatch", _DROP_OPTIONS, {"": "global", "db": "drop"}, "option"),
    # The no-drop network returns its regularization stream where the engine expects the drop stream.
    "nodropnet_neck": ReferenceModel(
        "top_db_net_no_drop", "triplet_dropbatch", {"last_stride": 1}, {"": "global", "db": "reg"}, "none"),
    # reidkit's bdb defaults to BDB's own soft margin and init; the reference trains its bdnet with the hard
    # TripletLoss(margin) and initialises it as its other models.
    "bdnet": ReferenceModel(
        "bdb", "triplet_dropbatch",
        {"last_stride": 1, "drop_height_ratio": 0.33, "drop_width_ratio": 1.0, "head_init": "top_db_net"},
        {"": "global", "db": "drop"}, "unsupported", {"loss.soft_margin": False}),
}


def reference_model(ref: ReferenceConfig) -> ReferenceModel:
    name = ref["model.name"]
    if name not in REFERENCE_MODELS:
        raise ref.refuse("model.name", f"expected one of {', '.join(REFERENCE_MODELS)} (the models of the reference's "
                                       "configs; reidkit builds no other reference model)")
    return REFERENCE_MODELS[name]


def _model_name(value: Any, ref: ReferenceConfig) -> Translation:
    model = reference_model(ref)
    return Translation({"model.name": model.name, "model.backbone": "resnet50", "model.options": dict(model.options),
                        **model.settings})


def _top_drop_epoch(value: Any, ref: ReferenceConfig) -> Translation:
    model = reference_model(ref)
    if model.top_drop == "none":
        return Translation(note="no effect: the model has no drop stream")
    if model.top_drop == "unsupported":
        if value != -1:
            raise Refused("reidkit's bdb has random Batch DropBlock only; expected -1 (never Top DropBlock)")
        return Translation(note="random Batch DropBlock throughout")
    # The reference switches when top_drop_epoch != -1 and epoch + 1 >= top_drop_epoch: -1 never, below -1 always.
    epoch = None if value == -1 else max(int(value), 0)
    return Translation({"model.options": {"top_drop_epoch": epoch}},
                       "" if epoch is not None else "never: random Batch DropBlock throughout")


def _stream_weight(group: str, loss: str) -> Translator:
    def translate(value: Any, ref: ReferenceConfig) -> Translation:
        stream = reference_model(ref).streams.get(group)
        if stream is None:
            return Translation(note=f"no effect: {ref['model.name']} has no such stream")
        if float(value) == 1.0:
            return Translation(note=f"{stream}/{loss} weighs 1, reidkit's default")
        return Translation({"loss.weights": {f"{stream}/{loss}": float(value)}})

    return translate


def _loss_name(value: Any, ref: ReferenceConfig) -> Translation:
    if ref["test.evaluate"]:
        return Translation(note="no effect: an evaluation-only config")
    model = reference_model(ref)
    if value != model.loss:
        raise Refused(f"the reference's {ref['model.name']} trains only with {model.loss!r} (its forward refuses "
                      "any other); reidkit applies triplet + cross-entropy to every stream, as that engine does")
    return Translation(note="triplet + cross-entropy on every stream (the model's loss_spec)")


# ------------------------------------------------------------------------------------------------- data


# The reference's image dataset names that reidkit reads; cuhk03 is split by cuhk03.labeled_images.
REFERENCE_DATASETS = {"market1501": "market1501", "dukemtmcreid": "dukemtmcreid", "msmt17": "msmt17", "viper": "viper"}
CUHK03_BY_LABELED = {True: "cuhk03_labeled", False: "cuhk03_detected"}
# data.transforms (a set: the reference applies them in its own fixed order) -> reidkit's augmentation recipe.
TRANSFORM_RECIPES = {frozenset({"random_flip", "random_crop", "random_erase"}): "top_db_net"}


def _dataset_names(value: Any, ref: ReferenceConfig) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        raise Refused("expected at least one dataset name")
    unknown = [n for n in names if n != "cuhk03" and n not in REFERENCE_DATASETS]
    if unknown:
        raise Refused(f"reidkit reads {', '.join(['cuhk03', *REFERENCE_DATASETS])} of the reference's datasets, not "
                      f"{', '.join(map(repr, unknown))}")
    return [CUHK03_BY_LABELED[bool(ref["cuhk03.labeled_images"])] if n == "cuhk03" else REFERENCE_DATASETS[n]
            for n in names]


def _sources(value: Any, ref: ReferenceConfig) -> Translation:
    names = _dataset_names(value, ref)
    return Translation({"data.name": names[0]} if len(names) == 1 else {"data.sources": names})


def _targets(value: Any, ref: ReferenceConfig) -> Translation:
    names = _dataset_names(value, ref)
    if names == _dataset_names(ref["data.sources"], ref):
        return Translation(note="the training data, reidkit's default targets")
    return Translation({"test.targets": names})


def _labeled_images(value: Any, ref: ReferenceConfig) -> Translation:
    named = [ref[key] if isinstance(ref[key], str) else list(ref[key]) for key in ("data.sources", "data.targets")]
    if not any(names == "cuhk03" or "cuhk03" in names for names in named):
        return Translation(note="no effect: no cuhk03 dataset")
    return Translation(note=f"cuhk03 is {CUHK03_BY_LABELED[bool(value)]}")


def _transforms(value: Any, ref: ReferenceConfig) -> Translation:
    chosen = frozenset(str(t).lower() for t in value)
    if chosen not in TRANSFORM_RECIPES:
        known = "; ".join(f"{sorted(k)} ({v})" for k, v in TRANSFORM_RECIPES.items())
        raise Refused(f"reidkit reproduces the reference's transforms {known}")
    return Translation({"data.recipe": TRANSFORM_RECIPES[chosen]})


def _pretrained(value: Any, ref: ReferenceConfig) -> Translation:
    note = "" if value else "the reference's models load ImageNet weights whatever this flag says"
    return Translation({"model.pretrained": "imagenet"}, note)


def _load_weights(value: Any, ref: ReferenceConfig) -> Translation:
    if not value:
        return Translation(note="none")
    return Translation({"model.weights": str(value)}, "the weights `reidkit test` evaluates (and training starts from)")


# ------------------------------------------------------------------------------------------ train, test

# Peak of each schedule the reference's train.lr multiplies: warmup_db's plateau is 1e-3 / 2.
SCHEDULE_PEAKS = {"warmup_db": 5e-4, "single_step": 1.0, "multi_step": 1.0}
OPTIMIZERS = {"adam": "adam", "sgd": "sgd"}
DISTANCES = {"euclidean": "sqeuclidean", "cosine": "cosine"}  # the reference's "euclidean" is squared


def _scheduler(ref: ReferenceConfig) -> str:
    name = ref["train.lr_scheduler"]
    if name not in SCHEDULE_PEAKS:
        raise ref.refuse("train.lr_scheduler", f"expected one of {', '.join(SCHEDULE_PEAKS)} (reidkit has no exact "
                                               "equivalent of the reference's other schedules)")
    return name


def _lr_scheduler(value: Any, ref: ReferenceConfig) -> Translation:
    if _scheduler(ref) == "warmup_db":
        # The reference's warmup_db steps by fixed factors of 10, whatever train.gamma.
        return Translation({"schedule.name": "warmup_db", "schedule.gamma": 0.1})
    return Translation({"schedule.name": "multistep", "schedule.warmup_epochs": 0})


def _stepsize(value: Any, ref: ReferenceConfig) -> Translation:
    steps = [value] if isinstance(value, int) else list(value)
    kind = _scheduler(ref)
    if kind == "warmup_db":
        # reidkit spreads warmup_db's 10 warm-up steps over [0, milestones[0]); the reference rises every 5 epochs
        # whatever stepsize[0]: the two agree at 50 only.
        if len(steps) != 3 or steps[0] != 50:
            raise Refused("warmup_db expects [50, first decay, second decay]")
        return Translation({"schedule.milestones": steps})
    if kind == "single_step":  # StepLR: a decay every stepsize epochs (the last entry of a list)
        return Translation({"schedule.milestones": list(range(steps[-1], int(ref["train.max_epoch"]), steps[-1]))})
    return Translation({"schedule.milestones": steps})


def _gamma(value: Any, ref: ReferenceConfig) -> Translation:
    if _scheduler(ref) == "warmup_db":
        return Translation(note="no effect: warmup_db decays by 10")
    return Translation({"schedule.gamma": float(value)})


def _lr(value: Any, ref: ReferenceConfig) -> Translation:
    peak = SCHEDULE_PEAKS[_scheduler(ref)]
    note = f"{value} x {ref['train.lr_scheduler']}'s peak {peak:g}" if peak != 1.0 else ""
    return Translation({"optim.lr": float(value) * peak}, note)


def _optim(value: Any, ref: ReferenceConfig) -> Translation:
    if value not in OPTIMIZERS:
        raise Refused(f"expected one of {', '.join(OPTIMIZERS)}")
    return Translation({"optim.name": OPTIMIZERS[value]})


def _betas(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation({"optim.betas": [float(ref["adam.beta1"]), float(ref["adam.beta2"])]})


def _eval_freq(value: Any, ref: ReferenceConfig) -> Translation:
    # The reference evaluates and saves a checkpoint every eval_freq epochs and after the last (-1: the last only).
    period = max(int(value), 0)
    return Translation({"test.eval_period": period, "checkpoint.period": period})


def _evaluate(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation(note="evaluation only: run it with `reidkit test --config`" if value else "a training run")


def _dist_metric(value: Any, ref: ReferenceConfig) -> Translation:
    if value not in DISTANCES:
        raise Refused(f"expected one of {', '.join(DISTANCES)}")
    return Translation({"test.metric": DISTANCES[value]})


def _visrank_topk(value: Any, ref: ReferenceConfig) -> Translation:
    if not any(ref[f"test.{kind}"] for kind in ("visrank", "visrankactiv", "visrankactivthr")):
        return Translation(note="no effect: no ranked lists are drawn")
    return Translation({"test.topk": int(value)})


def _visdroptype(value: Any, ref: ReferenceConfig) -> Translation:
    if not ref["test.visdrop"]:
        return Translation(note="no effect: test.visdrop is off")
    options = {**reference_model(ref).options, **_top_drop_epoch(ref["loss.dropbatch.top_drop_epoch"], ref).settings
               .get("model.options", {})}
    # reidkit draws the mask the model applies at its first epoch.
    drawn = "top" if options.get("top_drop_epoch") in (0, 1) else "random"
    if value != drawn:
        raise Refused(f"reidkit draws the mask this model applies at its first epoch, {drawn!r}")
    return Translation()


# ------------------------------------------------------------------------------------------------ table


def to(key: str, convert: Callable[[Any], Any] = lambda v: v) -> Translator:
    """The reidkit key of the same meaning."""
    return lambda value, ref: Translation({key: convert(value)})


def no_effect(reason: str) -> Translator:
    return lambda value, ref: Translation(note=f"no effect: {reason}")


def only(accepted: Any, expected: str) -> Translator:
    """A key reidkit honours at one value only (the reference's default), refused at any other."""
    def translate(value: Any, ref: ReferenceConfig) -> Translation:
        if value != accepted:
            raise Refused(expected)
        return Translation()

    return translate


def _refuse_true(expected: str) -> Translator:
    return only(False, expected)


def _when_staged(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation(note="no effect: train.staged_lr is off")


def _when_fixbase(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation(note="no effect: train.fixbase_epoch is 0")


def _image_only(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation(note="no effect: an image config")


# sampler.train_sampler -> data.sampler: P x K over every image; every identity once with K images; and, as the
# reference's build_train_sampler does for any other name, torch's RandomSampler (its loader drops the last batch).
SAMPLERS = {"RandomIdentitySampler": "identity", "RandomIdentitySamplerFast": "identity_once",
            "RandomSampler": "shuffle"}


def _train_sampler(value: Any, ref: ReferenceConfig) -> Translation:
    if value in SAMPLERS:
        return Translation({"data.sampler": SAMPLERS[value]})
    return Translation({"data.sampler": "shuffle"}, "the reference uses RandomSampler for any other name")


def _misindented_loss(value: Any, ref: ReferenceConfig) -> Translation:
    return Translation(note="the file indents `loss:` under `sampler:` (the reference's yacs refuses it); "
                            "read as loss.name, unused by an evaluation")


_METRIC_LOSS = "the reference's image engines of these models do not use it"

TRANSLATORS: dict[str, Translator] = {
    "model.name": _model_name,
    "model.pretrained": _pretrained,
    "model.load_weights": _load_weights,
    "model.resume": only("", "expected '' (continue a reidkit run with `reidkit train --resume RUN`)"),
    "data.type": only("image", "expected 'image' (reidkit's video recipes are configs/video/)"),
    "data.root": to("data.root", str),
    "data.sources": _sources,
    "data.targets": _targets,
    "data.workers": no_effect("loader processes (reidkit's data.workers)"),
    "data.split_id": only(0, "expected 0 (reidkit reads each dataset's standard split)"),
    "data.height": to("data.height", int),
    "data.width": to("data.width", int),
    "data.combineall": _refuse_true("expected False (reidkit trains on the training split)"),
    "data.transforms": _transforms,
    "data.norm_mean": only(IMAGENET_MEAN, f"expected the ImageNet mean {IMAGENET_MEAN}"),
    "data.norm_std": only(IMAGENET_STD, f"expected the ImageNet std {IMAGENET_STD}"),
    "data.save_dir": to("output.dir", str),
    "market1501.use_500k_distractors": _refuse_true("expected False (reidkit has no Market-1501 500k distractors)"),
    "cuhk03.labeled_images": _labeled_images,
    "cuhk03.classic_split": _refuse_true("expected False (reidkit reads the 767/700 protocol)"),
    "cuhk03.use_metric_cuhk03": lambda value, ref: Translation({"test.protocol": "cuhk03"} if value else {}),
    "sampler.train_sampler": _train_sampler,
    "sampler.num_instances": to("data.num_instances", int),
    "sampler.loss": _misindented_loss,
    "sampler.name": _misindented_loss,
    "video.seq_len": _image_only,
    "video.sample_method": _image_only,
    "video.pooling_method": _image_only,
    "train.optim": _optim,
    "train.lr": _lr,
    "train.weight_decay": to("optim.weight_decay", float),
    "train.max_epoch": to("train.epochs", int),
    "train.start_epoch": only(0, "expected 0 (continue a reidkit run with `reidkit train --resume RUN`)"),
    "train.batch_size": to("train.batch_size", int),
    "train.fixbase_epoch": only(0, "expected 0: reidkit's train.fixbase_epochs trains every new layer, not the "
                                "train.open_layers list; set it in a reidkit recipe"),
    "train.open_layers": _when_fixbase,
    "train.staged_lr": _refuse_true("expected False: reidkit's optim.backbone_lr_factor scales the backbone, not "
                                    "every layer outside train.new_layers; set it in a reidkit recipe"),
    "train.new_layers": _when_staged,
    "train.base_lr_mult": _when_staged,
    "train.lr_scheduler": _lr_scheduler,
    "train.stepsize": _stepsize,
    "train.gamma": _gamma,
    "train.print_freq": no_effect("logging (reidkit's train.log_period)"),
    "train.seed": to("train.seed", int),
    "sgd.momentum": to("optim.momentum", float),
    "sgd.dampening": only(0.0, "expected 0 (reidkit's sgd has no dampening)"),
    "sgd.nesterov": to("optim.nesterov", bool),
    "rmsprop.alpha": no_effect("rmsprop is not among reidkit's optimizers"),
    "adam.beta1": _betas,
    "adam.beta2": _betas,
    "loss.name": _loss_name,
    "loss.softmax.label_smooth": lambda value, ref: Translation({"loss.label_smooth": 0.1 if value else 0.0}),
    "loss.triplet.margin": to("loss.margin", float),
    "loss.triplet.weight_t": _stream_weight("", "triplet"),
    "loss.triplet.weight_x": _stream_weight("", "ce"),
    "loss.triplet.weight_n": no_effect(_METRIC_LOSS),
    "loss.triplet.weight_x_parts": no_effect(_METRIC_LOSS),
    "loss.triplet.weight_t_parts": no_effect(_METRIC_LOSS),
    "loss.dropbatch.weight_db_t": _stream_weight("db", "triplet"),
    "loss.dropbatch.weight_db_x": _stream_weight("db", "ce"),
    "loss.dropbatch.weight_b_db_t": _stream_weight("b_db", "triplet"),
    "loss.dropbatch.weight_b_db_x": _stream_weight("b_db", "ce"),
    "loss.dropbatch.top_drop_epoch": _top_drop_epoch,
    "loss.npairs.margin_sasc": no_effect(_METRIC_LOSS),
    "loss.npairs.margin_sadc": no_effect(_METRIC_LOSS),
    "loss.npairs.margin_dasc": no_effect(_METRIC_LOSS),
    "loss.separate.weight_separate": no_effect(_METRIC_LOSS),
    "test.batch_size": to("test.batch_size", int),
    "test.dist_metric": _dist_metric,
    "test.normalize_feature": to("test.normalize", bool),
    "test.ranks": no_effect("the ranks printed (reidkit prints its CMC up to test.max_rank)"),
    "test.evaluate": _evaluate,
    "test.eval_freq": _eval_freq,
    "test.start_eval": only(0, "expected 0 (reidkit evaluates every test.eval_period epochs from the start)"),
    "test.rerank": to("test.rerank", bool),
    "test.visrank": to("test.visrank", bool),
    "test.visrankactiv": to("test.visrankactiv", bool),
    "test.visrank_topk": _visrank_topk,
    "test.visactmap": _refuse_true("expected False (reidkit draws activation maps in the ranked lists: "
                                   "test.visrankactiv)"),
    "test.vispartmap": _refuse_true("expected False (the reference's part maps are not drawn by reidkit)"),
    "test.visrankactivthr": to("test.visrankactivthr", bool),
    "test.maskthr": to("test.maskthr", float),
    "test.visdrop": to("test.visdrop", bool),
    "test.visdroptype": _visdroptype,
}


# ---------------------------------------------------------------------------------------------- reading


def _file_pairs(data: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
    """(section, key) of the file's first two levels; key None for a section that is not a mapping."""
    for section, values in data.items():
        if isinstance(values, Mapping) and values:
            yield from ((str(section), str(key)) for key in values)
        else:
            yield str(section), None


def is_reference_config(data: Mapping[str, Any], reidkit_keys: set[str], source: str) -> bool:
    """Whether `data` is written in the reference's schema: a section or key that only the reference has, and
    none that only reidkit has. A file with both is refused, naming one of each."""
    reidkit_sections = {key.split(".")[0] for key in reidkit_keys}
    ref_only, reidkit_only = [], []
    for section, key in _file_pairs(data):
        dotted = section if key is None else f"{section}.{key}"
        in_ref = section in REFERENCE_DEFAULTS and (key is None or key in REFERENCE_DEFAULTS[section]
                                                    or dotted in MISINDENTED)
        in_reidkit = section in reidkit_sections and (key is None or dotted in reidkit_keys)
        if in_ref and not in_reidkit:
            ref_only.append(dotted)
        elif in_reidkit and not in_ref:
            reidkit_only.append(dotted)
    if ref_only and reidkit_only:
        raise ConfigError(f"{source}: mixes reidkit keys ({', '.join(reidkit_only[:3])}) and keys of the Top-DB-Net "
                          f"reference's schema ({', '.join(ref_only[:3])}); write the file in one of them")
    return bool(ref_only)


def _type_problem(value: Any, default: Any) -> str | None:
    """What a value of the key whose yacs default is `default` must be (yacs refuses a change of type; an integer
    where a float is expected is accepted), or None when it fits."""
    kinds = [(bool, "true/false"), (int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list")]
    for kind, name in kinds:
        if isinstance(default, kind):
            fits = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
            return None if fits and (kind is bool or not isinstance(value, bool)) else name
    return None


def _check_keys(ref: ReferenceConfig) -> None:
    for key, value in ref.given.items():
        if key in MISINDENTED:
            if value != MISINDENTED[key]:
                raise ref.refuse(key, "not a key of the reference's schema")
            continue
        if key not in TRANSLATORS:
            close = difflib.get_close_matches(key, list(TRANSLATORS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{ref.source}: {key!r} is not a key of the Top-DB-Net reference's config schema{hint}")
        problem = _type_problem(value, DEFAULTS[key])
        if problem:
            raise ref.refuse(key, f"expected {problem}, as the reference's default {DEFAULTS[key]!r}")


def _merge(into: dict[str, dict[str, Any]], settings: Mapping[str, Any]) -> None:
    for dotted, value in settings.items():
        section, key = dotted.split(".", 1)
        target = into.setdefault(section, {})
        if isinstance(value, dict):
            target.setdefault(key, {}).update(copy.deepcopy(value))
        else:
            target[key] = copy.deepcopy(value)


Given = list[tuple[str, Any, Translation]]


def translate(data: Mapping[str, Any], source: str) -> tuple[dict[str, dict[str, Any]], Given]:
    """(the reidkit recipe a reference config means, as {section: {key: value}}; (key, value, translation) of each
    key the file sets)."""
    ref = ReferenceConfig(data, source)
    _check_keys(ref)
    recipe: dict[str, dict[str, Any]] = {}
    given = []
    for key, translator in TRANSLATORS.items():
        if key not in ref.values:
            continue
        try:
            result = translator(ref[key], ref)
        except Refused as refusal:
            raise ref.refuse(key, str(refusal)) from None
        _merge(recipe, result.settings)
        if key in ref.given:
            given.append((key, ref[key], result))
    return recipe, given


def _show(key: str, value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return f"{key}={text if len(text) <= limit else text[:limit - 5] + ' ...' + text[-1]}"


def format_translation(source: str, given: Given, width: int = 118) -> str:
    """One block: a line per key whose reidkit key or value differs, then the keys kept as they are, then those
    that set nothing (reidkit's default already, or no effect here), with why."""
    changed, same, unset = [], [], []
    for key, value, result in given:
        note = result.note.removeprefix("no effect: ")
        if not result.settings:
            unset.append(_show(key, value) + (f" ({note})" if note else ""))
        elif result.settings == {key: value} or (len(result.settings) == 1 and not result.note and next(
                iter(result.settings.items())) == (_same_key(key), value)):
            same.append(_show(key, value))
        else:
            settings = ", ".join(_show(k, v) for k, v in result.settings.items())
            changed.append(f"  {_show(key, value)} -> {settings}" + (f" ({note})" if note else ""))
    lines = [f"{source}: a Top-DB-Net reference config (RQuispeC/top-dropblock), read as the reidkit recipe "
             "(overrides take reidkit keys):", *changed]
    for label, items in (("kept as they are", same), ("already reidkit's default, or without effect here", unset)):
        if items:
            lines += textwrap.wrap(f"{label}: " + "; ".join(items), width, initial_indent="  ",
                                   subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


def _same_key(key: str) -> str:
    """The key of the same section and name (test.rerank for test.rerank; loss.margin for loss.triplet.margin)."""
    section, _, name = key.rpartition(".")
    return f"{section.split('.')[0]}.{name}"


def translate_if_reference(data: dict[str, Any], source: str, reidkit_keys: set[str],
                           out: Callable[[str], None] = print) -> dict[str, Any]:
    """`data` unchanged when it is a reidkit config; the reidkit recipe it means when it is a Top-DB-Net reference
    config, after printing the translation."""
    if not is_reference_config(data, reidkit_keys, source):
        return data
    recipe, given = translate(data, source)
    out(format_translation(source, given))
    return recipe


def evaluation_only(data: Mapping[str, Any]) -> bool:
    """Whether a reference config is a test config (test.evaluate: the reference only evaluates model.load_weights)."""
    test = data.get("test")
    return isinstance(test, Mapping) and test.get("evaluate") is True
