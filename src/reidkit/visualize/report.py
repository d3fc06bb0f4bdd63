"""run_dir/report.html: resolved config, metrics table, plots and sample ranked lists, self-contained.

Everything the page shows lives under run_dir (plots in run_dir/report_files/, ranked lists copied there when
they are elsewhere) and is linked by relative URL, so the folder can be moved or opened offline.
"""
from __future__ import annotations

import datetime
import html
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union
from urllib.parse import quote

import numpy as np
import torch
import yaml

from reidkit.metrics import query_average_precision
from reidkit.utils.io import atomic_open, atomic_write_text
from reidkit.visualize.grid import DEFAULT_CELL_SIZE
from reidkit.visualize.plots import evaluation_records, history_panels, plot_cmc, plot_history, plot_roc, read_history
from reidkit.visualize.ranked import image_path, visualize_test_run
from reidkit.visualize.ranking import as_distmat, select_queries

FILES_DIR = "report_files"
RankedImage = Union[str, os.PathLike, tuple[str, Union[str, os.PathLike]]]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre { background: #f4f4f4; padding: 1em; overflow-x: auto; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""


def _format(value: Any) -> str:
    """A metric (a fraction) in percent with one decimal, as the CLI's tables; other values as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return html.escape(str(value))
    return f"{100 * value:.1f}" if isinstance(value, (float, np.floating)) else str(value)


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    """One row per label, metrics in percent."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a mapping label -> {{name: value}}, got {type(metrics).__name__}")
    rows = metrics if all(isinstance(v, Mapping) for v in metrics.values()) else {"results": metrics}
    if not rows:
        return "<p>No metrics.</p>"
    columns = list(dict.fromkeys(name for row in rows.values() for name in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(str(label))}</td>"
        + "".join(f"<td>{_format(row[c]) if c in row else ''}</td>" for c in columns)
        + "</tr>"
        for label, row in rows.items()
    )
    return f"<table><tr><th>(%)</th>{head}</tr>{body}</table>"


def _config_text(config: Mapping[str, Any]) -> str:
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    # The JSON round trip turns paths, tuples and other objects into plain YAML-safe values.
    plain = json.loads(json.dumps(config, default=str))
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False)


def _link(path: Path, run_dir: Path) -> str:
    return quote(path.resolve().relative_to(run_dir.resolve()).as_posix())


def _copy_into(source: Path, target_dir: Path, taken: set[str]) -> Path:
    name, counter = source.name, 1
    while name in taken:
        name, counter = f"{source.stem}_{counter}{source.suffix}", counter + 1
    taken.add(name)
    target = target_dir / name
    with open(source, "rb") as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def _ranked_figures(ranked_images: Sequence[RankedImage], run_dir: Path) -> list[tuple[str, Path]]:
    """(caption, path under run_dir) per image; images outside run_dir are copied into report_files/ranked."""
    figures, taken = [], set()
    for entry in ranked_images:
        caption, path = entry if isinstance(entry, tuple) else (Path(entry).stem, entry)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ranked image {str(path)!r} does not exist; expected a grid written by visualize_test_run"
            )
        if not path.resolve().is_relative_to(run_dir.resolve()):
            path = _copy_into(path, run_dir / FILES_DIR / "ranked", taken)
        figures.append((str(caption), path))
    return figures


def _figure(src: str, caption: str) -> str:
    caption = html.escape(caption)
    return f'<figure><a href="{src}"><img src="{src}" alt="{caption}"></a><figcaption>{caption}</figcaption></figure>'


def _plots(run_dir: Path, cmc: Mapping | None, history: Sequence[Mapping],
           roc: Mapping | None = None) -> list[tuple[str, Path]]:
    plots = []
    if cmc:
        plots.append(("CMC", plot_cmc(cmc, run_dir / FILES_DIR / "cmc.png")))
    if roc:
        plots.append(("Verification ROC", plot_roc(roc, run_dir / FILES_DIR / "roc.png")))
    if history_panels(history):
        plots.append(("Training history", plot_history(history, run_dir / FILES_DIR / "history.png")))
    return plots


def _single_evaluation(history: Sequence[Mapping]) -> str:
    """The evaluation of a history evaluated at one epoch only (not worth a plot) as a table; else ''."""
    evaluated = evaluation_records(history)
    if len(evaluated) != 1:
        return ""
    epoch, row = evaluated[0]
    return f"<h3>Evaluation during training</h3>{_metrics_table({f'epoch {epoch}': row})}"


def write_report(
    run_dir: str | os.PathLike,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history_path: str | os.PathLike | None = None,
    cmc: Mapping[str, Sequence[float]] | None = None,
    ranked_images: Sequence[RankedImage] | None = None,
    title: str | None = None,
    roc: Mapping[str, Any] | None = None,
) -> Path:
    """Write run_dir/report.html (+ report_files/*.png) and return its path.

    metrics: {"without re-ranking": {"mAP": .., "Rank-1": ..}, "with re-ranking": {...}} (a flat
    {name: value} mapping is shown as one row). history_path: metrics.jsonl of the training run.
    cmc: label -> CMC array. ranked_images: grid paths, or (caption, path) pairs, e.g. from report_samples.
    roc: the verification ROC (metrics.verification.VerificationResult.curve()).
    """
    run_dir = Path(run_dir)
    title = title or f"reidkit report: {run_dir.resolve().name}"
    history = read_history(history_path) if history_path is not None else []
    plots = _plots(run_dir, cmc, history, roc)
    figures = _ranked_figures(ranked_images or [], run_dir)
    generated = datetime.datetime.now().isoformat(timespec="seconds")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>Generated {generated}.</p>",
        "<h2>Metrics</h2>", _metrics_table(metrics),
        "<h2>Plots</h2>", "".join(_figure(_link(p, run_dir), c) for c, p in plots) or "<p>No plots.</p>",
        _single_evaluation(history),
        "<h2>Ranked lists</h2>",
        "<p>Query (black border) then the top-ranked gallery images: green correct, red wrong.</p>" if figures else "",
        "".join(_figure(_link(p, run_dir), c) for c, p in figures) or "<p>No ranked lists.</p>",
        "<h2>Configuration</h2>", f"<pre>{html.escape(_config_text(config))}</pre>",
        "</body></html>\n",
    ]
    report = run_dir / "report.html"
    atomic_write_text(report, "\n".join(parts))
    return report


def report_samples(
    model: torch.nn.Module | None,
    query: Sequence,
    gallery: Sequence,
    distmat: np.ndarray | torch.Tensor,
    run_dir: str | os.PathLike,
    *,
    transform: Callable | None = None,
    num_best: int = 3,
    num_worst: int = 3,
    topk: int = 5,
    device: str | torch.device = "cpu",
    dataset_name: str = "dataset",
    batch_size: int = 32,
    cell_size: Sequence[int] = DEFAULT_CELL_SIZE,
) -> list[tuple[str, Path]]:
    """Draw the best and worst queries by AP into run_dir/report_files/ranked and return (caption, path) pairs
    for write_report(ranked_images=...). With activation maps when the model has backbone_features and a
    transform is given, plain ranked lists otherwise."""
    q_pids, q_camids = [item[1] for item in query], [item[2] for item in query]
    g_pids, g_camids = [g[1] for g in gallery], [g[2] for g in gallery]
    aps = query_average_precision(as_distmat(distmat, len(query), len(gallery)), q_pids, g_pids, q_camids, g_camids)
    best, worst = select_queries(aps, num_best, num_worst)
    with_maps = transform is not None and callable(getattr(model, "backbone_features", None))
    paths = visualize_test_run(
        model, query, gallery, distmat, Path(run_dir) / FILES_DIR / "ranked",
        modes=["visrankactiv" if with_maps else "visrank"], topk=topk, transform=transform, device=device,
        dataset_name=dataset_name, batch_size=batch_size, query_indices=best + worst, cell_size=cell_size,
    )
    labels = [f"best {i + 1}" for i in range(len(best))] + [f"worst {i + 1}" for i in range(len(worst))]
    return [
        (f"{label}: {Path(image_path(query[q][0])).name} (AP {aps[q]:.1%})", path)
        for label, q, path in zip(labels, best + worst, paths)
    ]
