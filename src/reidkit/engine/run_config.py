"""Config checks and what follows from the config: check_config (before any data is read),
check_config_against_data (once it is), the training data (build_dataset_from, data_label) and the model
options derived from the data (with_data_model_options)."""
from __future__ import annotations

import copy
import difflib
from typing import Any, Mapping

from reidkit.config import Config
from reidkit.errors import ConfigError, RegistryError


def _registry_check(registry: Any, name: str, key: str) -> None:
    try:
        registry.get(name)
    except RegistryError as error:
        raise ConfigError(f"{key}: {error}") from None


def _check_options(section: str, kind: str, name: str, given: Mapping[str, Any], accepted: Mapping[str, Any]
                   ) -> None:
    for key in given:
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.5)
            hint = f"; did you mean '{section}.{close[0]}'?" if close else ""
            raise ConfigError(f"{section}.{key}: {kind} {name!r} has no option {key!r}{hint} "
                              f"(its options and defaults: {accepted})")


def check_config(cfg: Config, *, backbone_weights: bool = False) -> None:
    """Before any data is read: names that the config refers to exist, model.options and data.options are
    options of the model and the dataset, the schedule is one the run can follow, and a batch holds two
    identities at least. (Each value's own bounds are checked as it is set, beside its field in config.py.)
    backbone_weights: the run will load model.pretrained (training from scratch), so its file must be there:
    torchvision's weights are downloaded now, once, and a download that cannot happen is said now."""
    from reidkit.data import DATASETS, TRANSFORM_RECIPES, dataset_options
    from reidkit.data.joint import target_specs, training_specs
    from reidkit.data.samplers import SAMPLERS
    from reidkit.engine.optim import schedule_factor
    from reidkit.models import BACKBONES, MODELS, ReidModel, model_options

    _registry_check(DATASETS, cfg.data.name, "data.name")
    _registry_check(TRANSFORM_RECIPES, cfg.data.recipe, "data.recipe")
    _registry_check(MODELS, cfg.model.name, "model.name")
    _registry_check(BACKBONES, cfg.model.backbone, "model.backbone")
    _check_options("model.options", "model", cfg.model.name, cfg.model.options, model_options(cfg.model.name))
    _check_options("data.options", "dataset", cfg.data.name, cfg.data.options, dataset_options(cfg.data.name))
    training_specs(cfg.data), target_specs(cfg)  # data.sources, test.targets: names, roots, options
    schedule_factor(cfg.schedule, cfg.train.epochs)  # raises ConfigError naming the schedule key
    problem = SAMPLERS.get(cfg.data.sampler).batch_problem(cfg.train.batch_size, cfg.data.num_instances)
    if problem:  # P x K for the identity sampler; the balanced sampler takes any batch size
        raise ConfigError(problem)
    if backbone_weights and cfg.model.pretrained:
        from reidkit.models.pretrained import resolve_pretrained

        resolve_pretrained(cfg.model.backbone, cfg.model.pretrained, key="model.pretrained")
    _check_fixbase(cfg, MODELS.get(cfg.model.name), ReidModel)
    _warn_short_anneal(cfg)


def _warn_short_anneal(cfg: Config) -> None:
    """The AICity reference anneals its AutoAugment view over the whole training; a run of other length (a
    recipe with train.epochs overridden) is told what its last epoch's probability will be."""
    anneal, epochs = cfg.data.autoaugment_epochs, cfg.train.epochs
    if anneal and anneal != epochs:
        import warnings

        from reidkit.data.transforms import autoaugment_probability

        warnings.warn(f"data.autoaugment_epochs={anneal} with train.epochs={epochs}: the AutoAugment view's "
                      f"probability ends at {autoaugment_probability(epochs, anneal):.2f} (the reference anneals "
                      f"to 0 over the whole training: set data.autoaugment_epochs={epochs})", stacklevel=2)


def _check_fixbase(cfg: Config, model_factory: Any, base: type) -> None:
    """train.fixbase_epochs freezes `model.backbone`: every ReidModel has one; a registered model class that is
    not a ReidModel is refused here, before the data is read (a factory function is checked when it has built
    the model, by engine.hooks.FixBaseHook)."""
    if cfg.train.fixbase_epochs and isinstance(model_factory, type) and not issubclass(model_factory, base):
        raise ConfigError(f"train.fixbase_epochs={cfg.train.fixbase_epochs}: model.name={cfg.model.name!r} "
                          f"({model_factory.__name__}) is not a reidkit ReidModel, so it has no `backbone` to "
                          "freeze; set train.fixbase_epochs=0")


def check_config_against_data(cfg: Config, dataset: Any) -> None:
    """Config values that depend on the dataset's sizes, checked once it is read (before any training)."""
    gallery = len(dataset.gallery)
    if cfg.test.rerank and cfg.test.k1 >= gallery:
        raise ConfigError(f"test.k1={cfg.test.k1} is not below the gallery size ({gallery} items of "
                          f"{getattr(dataset, 'name', cfg.data.name)}): the k-reciprocal sets would hold (nearly) "
                          f"every item, which leaves nothing for re-ranking to find; set test.k1 below {gallery} "
                          f"(e.g. {max(1, gallery // 2)}) or test.rerank=false")


def build_dataset_from(cfg: Config) -> Any:
    """The training data: data.name at data.root, or the union of data.sources (reidkit.data.joint)."""
    from reidkit.data.joint import build_joint_dataset, training_specs

    return build_joint_dataset(training_specs(cfg.data))


def data_label(cfg: Config) -> str:
    """How tables name the training data: data.name, or the sources' labels joined by ' + '."""
    from reidkit.data.joint import training_specs

    return " + ".join(spec.label for spec in training_specs(cfg.data))


def with_data_model_options(cfg: Config, dataset: Any) -> Config:
    """`cfg` with the model options that follow from the data filled in: frame_size = [data.height, data.width]
    and attribute_dims = the dataset's attribute schema (sizes of the attribute heads), for models that take
    them. A config value that contradicts the data is a ConfigError; so is a model of another sample kind
    (an image model on a video dataset)."""
    from reidkit.models import MODELS, model_options

    name = cfg.model.name
    kind = getattr(MODELS.get(name), "sample_kind", "image")
    if kind != dataset.sample_kind:
        fitting = [n for n in MODELS.names() if getattr(MODELS.get(n), "sample_kind", "image") == dataset.sample_kind]
        article = "an" if kind == "image" else "a"
        raise ConfigError(f"model.name={name!r} is {article} {kind} model but data.name={cfg.data.name!r} holds "
                          f"{dataset.sample_kind}s; use one of {', '.join(fitting)}")
    derived = _derived_model_options(cfg, dataset, model_options(name))
    if all(key in cfg.model.options for key in derived):
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.model.options.update({k: v for k, v in derived.items() if k not in cfg.model.options})
    return cfg


def _derived_model_options(cfg: Config, dataset: Any, accepted: Mapping[str, Any]) -> dict[str, Any]:
    name, derived = cfg.model.name, {}
    if "frame_size" in accepted:
        derived["frame_size"] = [cfg.data.height, cfg.data.width]
    if "attribute_dims" in accepted:
        schema = getattr(dataset, "attribute_schema", None)
        if schema is None:
            raise ConfigError(f"model.name={name!r} has attribute heads but data.name={cfg.data.name!r} has no "
                              "attribute labels; use a dataset with attributes (mars, dukemtmcvidreid, "
                              "synthetic_video) or a model without them (video_tp, video_ta, video_rnn)")
        derived["attribute_dims"] = dict(schema.group_dims)
    for key, value in derived.items():
        given = cfg.model.options.get(key)
        if given is not None and (list(given) if isinstance(given, tuple) else given) != value:
            raise ConfigError(f"model.options.{key}={given!r} does not match the data ({value!r} from "
                              f"{'data.height, data.width' if key == 'frame_size' else 'the dataset schema'}); "
                              "set it to that or leave it out")
    return derived
