"""PNG plots for the report: CMC curves, the verification ROC and training history (loss, learning rate, evaluation metrics).

Figures are built with matplotlib's object API (no pyplot), so nothing depends on a display or global state.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from reidkit.utils.io import atomic_open

EVAL_KEY = re.compile(r"^(mAP|mINP|[Rr]ank-?\d+|R\d+)$")


def read_history(path: str | os.PathLike) -> list[dict]:
    """Records of a metrics.jsonl file (one JSON object per line). Blank lines are ignored; unreadable lines
    (e.g. the last one cut short by a crash) are skipped with a warning rather than failing the report."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {str(path)!r} does not exist; expected a metrics.jsonl file")
    records, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    if bad:
        warnings.warn(f"{path}: skipped lines {bad}: not a JSON object", stacklevel=2)
    return records


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_cmc(cmc: Mapping[str, Sequence[float]], path: str | os.PathLike, *, title: str = "CMC") -> Path:
    """One curve per label (e.g. "without re-ranking", "with re-ranking"): matching rate against rank 1..N."""
    if not cmc:
        raise ValueError("cmc is empty; expected a mapping label -> CMC array")
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for label, curve in cmc.items():
        values = np.asarray(curve, dtype=float).ravel()
        if values.size == 0:
            raise ValueError(f"CMC curve {label!r} is empty; expected one value per rank")
        axes.plot(np.arange(1, values.size + 1), values, marker="." if values.size <= 50 else None, label=label)
    axes.set(xlabel="rank", ylabel="matching rate", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_roc(roc: Mapping[str, Any], path: str | os.PathLike, *, title: str = "Verification ROC") -> Path:
    """The same/different-identity ROC ({"fpr", "tpr", "points": [(target FPR, TPR, threshold)]}, as
    VerificationResult.curve() gives it) on a log FPR axis, with its operating points marked."""
    fpr, tpr = np.asarray(roc["fpr"], dtype=float), np.asarray(roc["tpr"], dtype=float)
    if fpr.shape != tpr.shape or fpr.size == 0:
        raise ValueError(f"roc fpr and tpr must be non-empty arrays of one shape, got {fpr.shape} and {tpr.shape}")
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    shown = fpr > 0
    axes.plot(fpr[shown], tpr[shown], label="query-gallery pairs")
    for target, rate, threshold in roc.get("points", []):
        axes.plot([target], [rate], marker="o", linestyle="none",
                  label=f"FPR {target:.0e}: TPR {rate:.1%} (cosine > {threshold:.3f})")
    axes.set_xscale("log")
    axes.set(xlabel="false positive rate (different identities accepted)", ylabel="true positive rate",
             title=title, ylim=(0, 1.02))
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small", loc="lower right")
    return _save(figure, path)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _series(history: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    """(x, y) of `key` over the records that have a finite value for it; x is the epoch, else the record index."""
    xs, ys = [], []
    for index, record in enumerate(history):
        value = _number(record.get(key))
        if value is not None:
            epoch = _number(record.get("epoch"))
            xs.append(epoch if epoch is not None else index + 1)
            ys.append(value)
    return xs, ys


def evaluation_records(history: Sequence[Mapping]) -> list[tuple[Any, dict[str, float]]]:
    """(epoch, {metric: value}) of each record that holds evaluation metrics (mAP, Rank-k, mINP)."""
    rows = []
    for index, record in enumerate(history):
        row = {k: v for k, v in record.items() if EVAL_KEY.match(k) and _number(v) is not None}
        if row:
            rows.append((record.get("epoch", index + 1), row))
    return rows


def history_panels(history: Sequence[Mapping]) -> dict[str, list[str]]:
    """Panel title -> keys to plot, limited to keys with at least one numeric value; evaluation metrics only
    when they were measured at two epochs or more (one point is a table, see report.py)."""
    keys = list(dict.fromkeys(k for record in history for k in record))
    present = [k for k in keys if _series(history, k)[1]]
    panels = {
        "loss": [k for k in present if k.startswith("loss")],
        "learning rate": [k for k in present if k == "lr" or k.startswith("lr")],
        "evaluation": [k for k in present if EVAL_KEY.match(k)] if len(evaluation_records(history)) > 1 else [],
    }
    return {title: ks for title, ks in panels.items() if ks}


def plot_history(history: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Loss, learning rate and evaluation metrics (mAP, Rank-k, mINP) over epochs, one panel each."""
    panels = history_panels(history)
    if not panels:
        raise ValueError("history has no numeric loss*, lr or evaluation (mAP, Rank-k, mINP) values to plot")
    figure = Figure(figsize=(5 * len(panels), 3.6))
    for position, (title, keys) in enumerate(panels.items(), start=1):
        axes = figure.add_subplot(1, len(panels), position)
        for key in keys:
            xs, ys = _series(history, key)
            axes.plot(xs, ys, marker="." if len(xs) < 30 else None, label=key)
        if title == "learning rate" and all(y > 0 for k in keys for y in _series(history, k)[1]):
            axes.set_yscale("log")
        axes.set(xlabel="epoch", title=title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return _save(figure, path)
