"""`reidkit demo`: train and evaluate a small Top-DB-Net on drawn people, end to end, in about five minutes.

    run_demo()                                   # what `reidkit demo` (and `make demo`) runs

The recipe is the packaged configs/demo/top_db_net_synthetic.yaml; the synthetic dataset is generated once into
the cache folder and reused. Before training, the same model with only its ImageNet backbone is evaluated, so the
table shows what training added. Every output lands in the run folder: a second demo goes to runs/demo_2, ...
rather than touching the first one's checkpoint and results.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reidkit.config import Config, load_config
from reidkit.engine import launch
from reidkit.engine.checkpoint import seed_everything
from reidkit.engine.evaluator import EvalResult, format_table

DEMO_RECIPE = "configs/demo/top_db_net_synthetic.yaml"
CACHE_ENV = "REIDKIT_CACHE"


@dataclass
class DemoResult:
    train: launch.TrainResult
    untrained: EvalResult
    seconds: float


def default_cache() -> Path:
    """$REIDKIT_CACHE, else ~/.cache/reidkit."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "reidkit").expanduser()


def demo_config(output: str | os.PathLike, cache: str | os.PathLike | None, overrides: Sequence[str]) -> Config:
    cache_dir = Path(cache).expanduser() if cache else default_cache()
    defaults = [f"data.root={cache_dir / 'synthetic_people'}", f"output.dir={launch.fresh_run_dir(output)}"]
    return load_config(DEMO_RECIPE, [*defaults, *overrides])


def evaluate_untrained(cfg: Config) -> EvalResult:
    """The recipe's model as built (pretrained backbone, new heads), evaluated without re-ranking."""
    launch.check_config(cfg, backbone_weights=True)
    seed_everything(cfg.train.seed)  # the same new heads every time
    ctx = launch.local_context(cfg)
    dataset = launch.build_dataset_from(cfg)
    model = launch.build_model_from(cfg, dataset.num_train_pids)
    model.to(ctx.device)
    return launch.evaluate_model(model, cfg, ctx, launch.test_loaders(cfg, dataset), rerank=False,
                                 num_gallery=len(dataset.gallery))


def run_demo(output: str | os.PathLike = "runs/demo", cache: str | os.PathLike | None = None,
             overrides: Sequence[str] = (), *, out: launch.Printer = print,
             trust_checkpoint: bool = False) -> DemoResult:
    """Generate (once) the synthetic data, evaluate the untrained model, train, evaluate with and without
    re-ranking, and print the table and where every output is. Weight files given in the overrides
    (model.pretrained, model.weights) are read tensors-only unless trust_checkpoint."""
    from reidkit.models.weights import trusting_checkpoints

    cfg = demo_config(output, cache, overrides)
    start = time.monotonic()
    out(f"demo: synthetic people under {cfg.data.root} (generated on first use), run folder {cfg.output.dir}")
    with trusting_checkpoints(trust_checkpoint):
        untrained = evaluate_untrained(cfg)
    start_point = "ImageNet backbone" if cfg.model.pretrained else "random weights"
    baseline = {f"untrained ({start_point})": untrained.table_rows()["without re-ranking"]}
    trained = launch.train(cfg, out=out, trust_checkpoint=trust_checkpoint, report_rows=baseline)
    seconds = time.monotonic() - start
    rows = {**baseline, **(trained.evaluation.table_rows() if trained.evaluation else {})}
    out("")
    out(format_table(rows, label=f"demo: {cfg.model.name} ({cfg.model.backbone}) on {cfg.data.name}"))
    out(_where(trained, seconds))
    if trained.checkpoint is not None:
        out(_index_test_gallery(cfg, trained))
    return DemoResult(trained, untrained, seconds)


def _index_test_gallery(cfg: Config, result: launch.TrainResult) -> str:
    """The synthetic test gallery indexed into the run folder with the trained model, and a search to try."""
    from reidkit.data.synthetic import MARKET_FOLDER
    from reidkit.engine.distributed import resolve_device
    from reidkit.gallery.indexing import index_with_model

    market, db = Path(cfg.data.root) / MARKET_FOLDER, result.run_dir / "gallery"
    summary = index_with_model(db, result.checkpoint, market / "bounding_box_test", pattern="market1501",
                               device=str(resolve_device(cfg.train.device)))
    query = sorted((market / "query").glob("*.jpg"))[0]
    return (f"gallery: {summary.gallery_size} test images indexed into {db}\n"
            f"try:  reidkit search --db {db} --query {query} --topk 10")


def _where(result: launch.TrainResult, seconds: float) -> str:
    run = result.run_dir
    lines = [f"demo finished in {seconds / 60:.1f} min. Outputs:",
             f"  checkpoint      {result.checkpoint}",
             f"  metrics         {result.results}  (per epoch: {result.history})",
             f"  report          {result.report or '(not written)'}",
             f"  pictures        {run / 'report_files'}",
             f"  config          {run / 'config.yaml'}",
             f"next: reidkit test --weights {result.checkpoint} --visrankactiv --vis-queries 10"]
    return "\n".join(lines)
