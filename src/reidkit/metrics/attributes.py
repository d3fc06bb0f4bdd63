"""Attribute accuracy of the video attribute heads (ASTA) against the majority-class baseline.

    report = attribute_report(schema, predicted, labels, train_labels)   # per attribute
    metrics = attribute_accuracy(schema, predicted, labels, train_labels) # {"attr/accuracy": .., ...}
    print(format_attribute_accuracy(metrics))
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def majority_accuracy(labels: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Per attribute, the accuracy on `labels` [N, A] of always answering the most frequent class of
    `reference` (default: of `labels` itself): the chance level to beat."""
    labels = np.asarray(labels)
    reference = labels if reference is None else np.asarray(reference)
    return np.array([np.mean(labels[:, a] == np.bincount(reference[:, a]).argmax()) for a in range(labels.shape[1])])


def attribute_report(schema: Any, predicted: np.ndarray, labels: np.ndarray,
                     train_labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Per attribute: accuracy of `predicted` [N, A] against `labels` [N, A], the majority-class baseline
    (the training set's most frequent class) and how many classes occur. Attributes constant in both sets
    are reported but tell nothing about the model."""
    accuracy = (np.asarray(predicted) == np.asarray(labels)).mean(0)
    chance = majority_accuracy(labels, train_labels)
    return {name: {"accuracy": float(accuracy[a]), "majority": float(chance[a]),
                   "classes": int(len(np.unique(np.concatenate([labels[:, a], train_labels[:, a]]))))}
            for a, (_, name, _) in enumerate(schema.attributes)}


def attribute_accuracy(schema: Any, predicted: np.ndarray, labels: np.ndarray, train_labels: np.ndarray
                       ) -> dict[str, float]:
    """Means over the attributes that vary (constant ones tell nothing; {} when none varies) of the accuracy
    and of the majority-class baseline (the training set's most frequent class).
    Keys: "attr/accuracy", "attr/majority", "attr/<attribute>" (accuracy), "attr/<attribute>/majority"."""
    report = attribute_report(schema, predicted, labels, train_labels)
    varying = {name: r for name, r in report.items() if r["classes"] > 1}
    if not varying:
        return {}
    metrics = {"attr/accuracy": float(np.mean([r["accuracy"] for r in varying.values()])),
               "attr/majority": float(np.mean([r["majority"] for r in varying.values()]))}
    for name, r in varying.items():
        metrics[f"attr/{name}"], metrics[f"attr/{name}/majority"] = r["accuracy"], r["majority"]
    return metrics


def format_attribute_accuracy(metrics: Mapping[str, float]) -> str | None:
    """One line of attribute accuracy against its baseline, or None without attribute metrics."""
    if "attr/accuracy" not in metrics:
        return None
    count = sum(1 for k in metrics if k.startswith("attr/") and k.count("/") == 2)
    return (f"attribute accuracy {metrics['attr/accuracy']:.1%} (majority-class baseline "
            f"{metrics['attr/majority']:.1%}; mean over {count} attributes, query + gallery tracklets)")
