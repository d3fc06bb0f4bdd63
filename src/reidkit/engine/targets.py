"""What a run evaluates: its targets (eval_targets: test.targets, else the training data, each source of a joint
training on its own) and the metrics of a model on them (evaluate_targets, evaluate_model), attribute accuracy
included for models with attribute heads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reidkit.config import Config
from reidkit.engine.builders import RunContext, test_loaders
from reidkit.engine.checkpoint import unwrap
from reidkit.engine.evaluator import EvalResult, combine_results, evaluate
from reidkit.engine.run_config import check_config_against_data, data_label


@dataclass
class EvalTarget:
    label: str
    dataset: Any
    loaders: tuple[Any, Any]


def eval_targets(cfg: Config, training: Any) -> list[EvalTarget]:
    """The datasets evaluated, each with its query/gallery loaders: test.targets, else the training data (each
    source of a joint training on its own). `training` (None: not built) is reused rather than read again."""
    from reidkit.data.joint import target_specs

    if cfg.test.targets or training is None:
        parts = [(spec.label, spec.build()) for spec in target_specs(cfg)]
    else:  # a JointDataset evaluates its parts
        parts = getattr(training, "parts", None) or [(data_label(cfg), training)]
    for _, dataset in parts:
        check_config_against_data(cfg, dataset)
    return [EvalTarget(label, dataset, test_loaders(cfg, dataset)) for label, dataset in parts]


def evaluate_targets(model: nn.Module, cfg: Config, ctx: RunContext, targets: Sequence[EvalTarget]) -> EvalResult:
    """evaluate_model on each target; several give one result holding their mean and each one's (.targets)."""
    results = {t.label: evaluate_model(model, cfg, ctx, t.loaders, num_gallery=len(t.dataset.gallery),
                                       dataset=t.dataset) for t in targets}
    return next(iter(results.values())) if len(results) == 1 else combine_results(results)


def target_results(result: EvalResult, targets: Sequence[EvalTarget]) -> list[tuple[EvalTarget, EvalResult]]:
    return [(t, result.targets[t.label]) for t in targets] if result.targets else [(targets[0], result)]


def evaluate_model(model: nn.Module, cfg: Config, ctx: RunContext, loaders: tuple[Any, Any], *,
                   rerank: bool | None = None, num_gallery: int | None = None, dataset: Any = None) -> EvalResult:
    """Metrics of `model` on the query/gallery loaders with the test settings of `cfg` (and the attribute
    accuracy when `dataset`, the loaders' dataset, has attribute labels and the model attribute heads), under
    the protocol of `eval_protocol`."""
    test = cfg.test
    max_rank = min(test.max_rank, num_gallery) if num_gallery else test.max_rank
    result = evaluate(
        unwrap(model), *loaders, device=ctx.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last,
        flip=test.flip, progress=cfg.output.progress and ctx.dist.is_main, metric=test.metric,
        normalize=test.normalize, rerank=test.rerank if rerank is None else rerank, max_rank=max_rank,
        k1=test.k1, k2=test.k2, lambda_value=test.lambda_value, protocol=eval_protocol(cfg, dataset),
    )
    result.extra.update(attribute_accuracy(unwrap(model), loaders, dataset, ctx))
    return result


def eval_protocol(cfg: Config, dataset: Any) -> str:
    """test.protocol when set, else the dataset's evaluation protocol (market without a dataset)."""
    return cfg.test.protocol or getattr(dataset, "eval_protocol", "market")


def attribute_accuracy(model: nn.Module, loaders: tuple[Any, Any], dataset: Any, ctx: RunContext) -> dict[str, float]:
    """Attribute accuracy on the query + gallery tracklets against the majority-class baseline ("attr/..."
    keys), for models with attribute heads on datasets with attribute labels; {} otherwise."""
    if not callable(getattr(model, "predict_attributes", None)) or getattr(dataset, "attribute_schema", None) is None:
        return {}
    return tracklet_attribute_accuracy(model, dict(zip(("query", "gallery"), loaders)), dataset, device=ctx.device)


def tracklet_attribute_accuracy(model: nn.Module, loaders: Mapping[str, Any], dataset: Any, *,
                                device: torch.device | str = "cpu") -> dict[str, float]:
    """reidkit.metrics.attributes.attribute_accuracy of the tracklets of `loaders` (subset -> chunk loader, e.g.
    query and gallery: people never seen in training) that have attribute labels ({} when none has)."""
    from reidkit.metrics.attributes import attribute_accuracy as accuracy_of
    from reidkit.models.asta import predict_tracklet_attributes

    schema = dataset.attribute_schema
    predicted, labels = [], []
    for subset, loader in loaders.items():
        known = [i for i, value in enumerate(dataset.attributes[subset]) if value is not None]
        logits = predict_tracklet_attributes(model, loader, device=device)
        predicted.append(schema.predict({g: v[known] for g, v in logits.items()}).numpy())
        labels.extend(dataset.attributes[subset][i] for i in known)
    if not labels:  # no test tracklet has an attribute row: nothing to measure
        return {}
    return accuracy_of(schema, np.concatenate(predicted), np.array(labels), np.array(dataset.attributes["train"]))
