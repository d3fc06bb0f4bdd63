"""What a run shows besides its numbers: report.html (write_run_report) and the ranked lists of `reidkit test`
(visualize_run), for each evaluated target."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from torch import nn

from reidkit.config import Config
from reidkit.engine.builders import Printer, RunContext
from reidkit.engine.checkpoint import unwrap
from reidkit.engine.evaluator import EvalResult, protocol_samples
from reidkit.engine.targets import EvalTarget, eval_protocol, target_results
from reidkit.utils.paths import renew_folder



def ranked_samples(target: EvalTarget, cfg: Config) -> tuple[list, list]:
    """The target's query and gallery with the camid field holding its protocol's junk key, as the ranked-list
    drawings (which skip same-identity same-camid items) need."""
    return protocol_samples(target.dataset.query, target.dataset.gallery, eval_protocol(cfg, target.dataset))


def _report_figures(run_dir: Path, cfg: Config, result: EvalResult, model: nn.Module, targets: Sequence[EvalTarget],
                    ctx: RunContext) -> tuple[list, dict]:
    """(best/worst ranked lists, CMC curves) of each target, labelled by target when there are several."""
    from reidkit.data import build_transforms
    from reidkit.visualize import report_samples

    transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
    samples, cmc = [], {}
    for target, part in target_results(result, targets):
        prefix = f"{target.label}: " if result.targets else ""
        drawn = report_samples(unwrap(model), *ranked_samples(target, cfg), part.distmat, run_dir, transform=transform,
                               device=ctx.device, dataset_name=target.label, batch_size=cfg.test.batch_size)
        samples += [(prefix + caption, path) for caption, path in drawn]
        cmc[prefix + "without re-ranking"] = part.cmc
        if part.cmc_reranked is not None:
            cmc[prefix + "with re-ranking"] = part.cmc_reranked
    return samples, cmc


def write_run_report(run_dir: Path, cfg: Config, result: EvalResult, model: nn.Module,
                     targets: Sequence[EvalTarget], ctx: RunContext, *, history: Path | None = None,
                     rows_before: Mapping[str, Mapping[str, float]] | None = None) -> Path | None:
    """report.html with the metrics (one table per target plus their mean, after `rows_before`), CMC and history
    plots and the best/worst ranked lists of each target. A failure here is reported as a warning: the checkpoint
    and results are already written."""
    try:
        from reidkit.visualize import write_report

        samples, cmc = _report_figures(run_dir, cfg, result, model, targets, ctx)
        labels = " + ".join(t.label for t in targets)
        return write_report(run_dir, config=cfg.to_dict(), metrics={**(rows_before or {}), **result.table_rows()},
                            history_path=history if history and history.is_file() else None, cmc=cmc,
                            ranked_images=samples, title=f"reidkit: {cfg.model.name} on {labels}",
                            roc=result.verification.curve() if result.verification is not None else None)
    except Exception as error:  # noqa: BLE001  (see the docstring)
        warnings.warn(f"could not write {run_dir / 'report.html'}: {type(error).__name__}: {error}", stacklevel=2)
        return None


def vis_modes(cfg: Config) -> list[str]:
    return [m for m in ("visrank", "visrankactiv", "visrankactivthr", "visdrop") if getattr(cfg.test, m)]


def visualize_run(cfg: Config, model: nn.Module, targets: Sequence[EvalTarget], result: EvalResult, out_dir: Path,
               ctx: RunContext, out: Printer) -> list[Path]:
    """The ranked lists asked for (of each target), in a renewed <out_dir>/visualizations: never mixed with an
    earlier test's."""
    modes, folder = vis_modes(cfg), out_dir / "visualizations"
    if not modes and not os.path.lexists(folder):
        return []
    from reidkit.data import build_transforms
    from reidkit.visualize import visualize_test_run

    transform = build_transforms(cfg.data.height, cfg.data.width, train=False, recipe=cfg.data.recipe)
    drawn, kept = renew_folder(folder, lambda stage: [path for target, part in target_results(result, targets)
                                                      for path in visualize_test_run(
        unwrap(model), *ranked_samples(target, cfg), part.distmat, stage, modes=modes,
        topk=cfg.test.topk, maskthr=cfg.test.maskthr, transform=transform, device=ctx.device,
        dataset_name=target.label, batch_size=cfg.test.batch_size, num_queries=cfg.test.vis_queries,
    )] if modes else [])
    if kept is not None:
        out(f"kept the files in {folder} that no earlier reidkit test wrote: they are now in {kept}")
    return drawn
