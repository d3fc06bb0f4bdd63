"""ASTA + AITL on synthetic video (MARS layout, with its attribute CSV), through the engine: `reidkit train`'s
own path (reidkit.engine.launch.train) with the recipe configs/video/asta_aitl_synthetic.yaml.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video_synthetic.py --root /tmp/reidkit_synthetic_video

Prints one table: re-ID mAP / Rank-1 / Rank-5 (query vs gallery tracklets, cosine distance, Market protocol)
and the attribute accuracy (query + gallery tracklets: people never seen in training; mean over the attributes
that vary) of an untrained model (the same recipe and seed, before any step) and of the trained model (and, to
show how well the heads fit, on its own training tracklets), against the chance (1 / number of classes) and
majority-class (the training set's most frequent class) baselines; then the wall time. The header line names the
video settings the run used: data.sampler and its steps per epoch, data.frame_order, data.per_frame and
loss.include_self (the recipe's unless overridden, e.g. data.frame_order=temporal data.sampler=identity).
Extra `section.key=value` arguments override the config (e.g. train.amp=bf16).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from reidkit.config import load_config
from reidkit.data.video import build_video_test_loader
from reidkit.engine.checkpoint import seed_everything
from reidkit.engine.launch import (
    RunContext,
    build_dataset_from,
    build_model_from,
    evaluate_model,
    setup,
    test_loaders,
    train,
    train_loader,
    with_data_model_options,
)
from reidkit.engine.targets import tracklet_attribute_accuracy
from reidkit.models import load_weights

CONFIG = "configs/video/asta_aitl_synthetic.yaml"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/tmp/reidkit_synthetic_video", help="synthetic data (made on first use)")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--num-ids", type=int, default=80, help="identities: half train, half test")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--tracklets-per-cam", type=int, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="tracklets per identity and camera (default: the generator's 1 2; MARS has ~13 "
                             "tracklets per identity)")
    parser.add_argument("--include-self", nargs="?", const="true", choices=["true", "false"], default=None,
                        help="AITL's loss.include_self (alone: true, the reference's; default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="run folder (default: a fresh temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides section.key=value")
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> Any:
    output = args.output or tempfile.mkdtemp(prefix="reidkit_video_bench_")
    tracklets = f", tracklets_per_cam: {list(args.tracklets_per_cam)}" if args.tracklets_per_cam else ""
    overrides = [
        f"data.root={args.root}", f"data.options={{num_ids: {args.num_ids}, seed: {args.seed}{tracklets}}}",
        f"train.epochs={args.epochs}", f"schedule.milestones=[{max(1, int(0.7 * args.epochs))}]",
        f"train.seed={args.seed}", f"train.threads={args.threads}",
        *([f"loss.include_self={args.include_self}"] if args.include_self else []),
        f"output.dir={output}", "output.progress=false", "output.report=false", "test.eval_period=0",
        "checkpoint.period=0", *args.overrides,
    ]
    return load_config(args.config, overrides)


def untrained_metrics(cfg: Any) -> dict[str, float]:
    """The recipe's model before training: pretrained backbone, freshly initialised heads (seeded as train())."""
    ctx: RunContext = setup(cfg)
    dataset = build_dataset_from(cfg)
    cfg = with_data_model_options(cfg, dataset)
    seed_everything(cfg.train.seed)
    model = build_model_from(cfg, dataset.num_train_pids).to(ctx.device)
    result = evaluate_model(model, cfg, ctx, test_loaders(cfg, dataset), num_gallery=len(dataset.gallery),
                            dataset=dataset)
    print(dataset.summary())
    steps = len(train_loader(cfg, dataset, ctx))
    return {**result.flat(), "chance": chance_accuracy(dataset, result.flat()), "steps_per_epoch": steps}


def training_fit(run_dir: Path, checkpoint: Path) -> dict[str, float]:
    """Attribute accuracy of the trained model on its own training tracklets (how well the heads fit)."""
    cfg = load_config(run_dir / "config.yaml")
    dataset = build_dataset_from(cfg)
    model = build_model_from(cfg, dataset.num_train_pids, pretrained=False)
    load_weights(model, checkpoint)
    loader = build_video_test_loader(dataset, "train", height=cfg.data.height, width=cfg.data.width,
                                     batch_size=cfg.test.batch_size, seq_len=cfg.data.seq_len, recipe=cfg.data.recipe)
    return tracklet_attribute_accuracy(model, {"train": loader}, dataset)


def chance_accuracy(dataset: Any, metrics: Mapping[str, float]) -> float:
    """Mean of 1 / (number of classes) over the attributes the accuracy is averaged over."""
    classes = {name: n for _, name, n in dataset.attribute_schema.attributes}
    varying = [k.split("/")[1] for k in metrics if k.startswith("attr/") and k.count("/") == 2]
    return float(np.mean([1.0 / classes[name] for name in varying]))


def row(label: str, m: Mapping[str, float]) -> str:
    cells = [m.get(k) for k in ("mAP", "Rank-1", "Rank-5", "attr/accuracy")]
    return f"| {label} | " + " | ".join("" if v is None else f"{100 * v:.1f}" for v in cells) + " |"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = build_config(args)
    started = time.time()
    before = untrained_metrics(cfg)
    evaluated = time.time()
    result = train(cfg, out=print)
    finished = time.time()
    after = result.evaluation.flat() if result.evaluation else {}
    print(f"\n{cfg.model.name} ({cfg.model.backbone}, pretrained {cfg.model.pretrained}) + AITL "
          f"(include_self={cfg.loss.include_self}) on synthetic_video, {args.num_ids} ids, {args.epochs} epochs of "
          f"{before['steps_per_epoch']} steps (sampler {cfg.data.sampler}), frame_order={cfg.data.frame_order}, "
          f"per_frame={cfg.data.per_frame}, amp={cfg.train.amp}, {args.threads} thread(s)")
    print("| model | mAP | Rank-1 | Rank-5 | attribute accuracy |\n|---|---|---|---|---|")
    print(row("untrained", before))
    print(row(f"trained ({args.epochs} epochs)", after))
    fit = training_fit(result.run_dir, result.checkpoint)
    print(f"| trained, on its training tracklets | | | | {100 * fit['attr/accuracy']:.1f} "
          f"(majority {100 * fit['attr/majority']:.1f}) |")
    print(f"| attribute baselines: chance | | | | {100 * before['chance']:.1f} |")
    print(f"| attribute baselines: majority class | | | | {100 * before['attr/majority']:.1f} |")
    names = [k.split("/")[1] for k in after if k.startswith("attr/") and k.count("/") == 2]
    print("\nper attribute (trained / majority): " + ", ".join(
        f"{n} {100 * after[f'attr/{n}']:.0f}/{100 * after[f'attr/{n}/majority']:.0f}" for n in names))
    print(f"wall time: untrained evaluation {evaluated - started:.0f} s, training + final evaluation "
          f"{finished - evaluated:.0f} s; run folder {Path(cfg.output.dir)}")


if __name__ == "__main__":
    main()
