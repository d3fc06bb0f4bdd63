"""ASTA + AITL on synthetic video (MARS layout): re-ID metrics and attribute accuracy before and after training.

    .venv/bin/python tests/video/bench_asta_synthetic.py --root /tmp/reidkit_synthetic_video

Everything is the project's own code: the synthetic video generator and the MARS reader, the video loaders
(P x K identity sampler on tracklets, clip-consistent augmentation, chunked test clips), build_model("asta"),
the AITL criterion, the engine's Trainer, optimizer, schedule and evaluator (cosine distance, Market protocol).

One bridge, until the engine passes batch targets to the criterion (see configs/video/README.md): a loader
wrapper (engine_bridge.py) hands each batch's attribute codes to the criterion before the Trainer's step.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import reidkit.data.video  # noqa: F401  (registers the video datasets)
from reidkit.config import OptimConfig, ScheduleConfig
from reidkit.data import build_dataset
from reidkit.data.video import build_video_test_loader, build_video_train_loader
from reidkit.engine.evaluator import extract_features, rank_metrics
from reidkit.engine.hooks import LRSchedulerHook
from reidkit.engine.optim import build_optimizer, build_scheduler
from reidkit.engine.trainer import Trainer
from reidkit.losses.aitl import AITLCriterion
from reidkit.metrics.distance import compute_distance_matrix
from reidkit.metrics.rank import evaluate_rank
from reidkit.models import build_model
from reidkit.models.asta import attribute_metrics

from engine_bridge import AttributeFeed, FeedingLoader  # tests/video/engine_bridge.py (run as a script)


def evaluate(model: nn.Module, dataset: Any, loaders: dict[str, Any]) -> dict[str, float]:
    """Re-ID metrics on tracklet features (mean over chunks, cosine distance, Market protocol) and the attribute
    accuracy of the query + gallery tracklets (identities never seen in training)."""
    q, g = (loaders[s].dataset.pool_features(extract_features(model, loaders[s])) for s in ("query", "gallery"))
    distmat = np.asarray(compute_distance_matrix(q.features, g.features, metric="cosine"))
    metrics = rank_metrics(*evaluate_rank(distmat, q.pids, g.pids, q.camids, g.camids, max_rank=20))
    return {**metrics, **attribute_metrics(model, loaders, dataset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/tmp/reidkit_synthetic_video")
    parser.add_argument("--num-ids", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--lr", type=float, default=3.5e-4)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--pretrained", default="deepsort", help="backbone weights ('none' for random)")
    parser.add_argument("--include-self", action="store_true", help="AITL as in the reference implementation")
    parser.add_argument("--amp", default="none", choices=("none", "bf16"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    height, width, seq_len = 64, 32, 4

    dataset = build_dataset("synthetic_video", root=args.root, num_ids=args.num_ids, seed=args.seed)
    print(dataset.summary())
    pretrained = None if args.pretrained == "none" else args.pretrained
    model = build_model("asta", dataset.num_train_pids, backbone=args.backbone, pretrained=pretrained,
                        frame_size=(height, width), attribute_dims=dataset.attribute_schema.group_dims)
    common = {"height": height, "width": width, "seq_len": seq_len}
    loaders = {s: build_video_test_loader(dataset, s, batch_size=32, **common) for s in ("query", "gallery")}
    train_loader = build_video_train_loader(dataset, batch_size=16, num_instances=4, seed=args.seed, **common)

    started = time.time()
    before = evaluate(model, dataset, loaders)
    feed = AttributeFeed(AITLCriterion(model, include_self=args.include_self, label_smooth=0.1, margin=0.3))
    optimizer = build_optimizer(model, OptimConfig(name=args.optimizer, lr=args.lr, weight_decay=5e-4))
    schedule = ScheduleConfig(name="multistep", milestones=[int(args.epochs * 0.7)], gamma=0.3, warmup_epochs=2,
                              warmup_factor=0.01)
    scheduler = build_scheduler(optimizer, schedule, args.epochs)
    trainer = Trainer(model, feed, optimizer, FeedingLoader(train_loader, feed), epochs=args.epochs,
                      scheduler=scheduler, amp=args.amp, hooks=[LRSchedulerHook(scheduler)])
    trainer.train()
    after = evaluate(model, dataset, loaders)
    elapsed = time.time() - started
    print(f"last step: loss {trainer.last_step.loss:.3f} {json.dumps({k: round(v, 3) for k, v in trainer.last_step.parts.items()})}")
    for name, m in (("untrained", before), ("trained", after)):
        print(f"{name:>9}: mAP {100 * m['mAP']:.1f}  R1 {100 * m['Rank-1']:.1f}  R5 {100 * m['Rank-5']:.1f}  "
              f"attribute accuracy {100 * m['attr/accuracy']:.1f} (majority-class baseline {100 * m['attr/majority']:.1f})")
    names = [k.split("/")[1] for k in after if k.startswith("attr/") and k.count("/") == 2]
    print("attribute      " + " ".join(f"{n[:9]:>9}" for n in names))
    for label, key in (("trained", "attr/{}"), ("untrained", "attr/{}"), ("majority", "attr/{}/majority")):
        source = before if label == "untrained" else after
        print(f"{label:<14} " + " ".join(f"{100 * source[key.format(n)]:>9.1f}" for n in names))
    print(f"{args.epochs} epochs of {len(train_loader)} iterations + 2 evaluations in {elapsed:.0f} s "
          f"({args.backbone}, pretrained={pretrained}, {args.optimizer} lr {args.lr}, include_self={args.include_self}, "
          f"amp={args.amp})")


if __name__ == "__main__":
    main()
