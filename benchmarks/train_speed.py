"""Training and inference speed (images/s) of Top-DB-Net on this machine in fp32, bf16 autocast and
channels_last, in one table, to pick the fastest CPU setting as the default (train.amp, train.channels_last).

    .venv/bin/python benchmarks/train_speed.py                       # ResNet-50, 384x128, batch 8
    .venv/bin/python benchmarks/train_speed.py --backbone mobilenet_v2 --height 128 --width 64 --batch-size 64

Synthetic tensors (no data loading): the numbers measure the model step of reidkit's Trainer (forward under
autocast, fp32 losses, backward, Adam step) and eval-mode feature extraction. Run it on an otherwise idle machine.
The defaults (batch 8, one untimed and two timed iterations) keep the whole table near 12 minutes on a 2-core CPU
without native bf16, where one bf16 ResNet-50 step at 384x128 takes over a minute.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from reidkit.config import OptimConfig
from reidkit.engine.optim import build_optimizer
from reidkit.engine.trainer import Trainer
from reidkit.losses import build_criterion
from reidkit.models import build_model

SETTINGS = {  # name -> (amp, channels_last)
    "fp32": ("none", False),
    "bf16 autocast": ("bf16", False),
    "fp32 channels_last": ("none", True),
    "bf16 channels_last": ("bf16", True),
}


def make_model(args: argparse.Namespace, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(args.model, args.num_classes, backbone=args.backbone, pretrained=None)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def batch(args: argparse.Namespace) -> dict:
    pids = torch.arange(args.batch_size) // args.num_instances % args.num_classes
    return {"img": torch.randn(args.batch_size, 3, args.height, args.width), "pid": pids}


def train_speed(args: argparse.Namespace, amp: str, channels_last: bool) -> float:
    model = make_model(args, channels_last)
    data = batch(args)
    trainer = Trainer(model, build_criterion(model), build_optimizer(model, OptimConfig()), [data], epochs=1,
                      amp=amp, channels_last=channels_last)
    trainer.num_batches = 1
    model.train()
    times = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        trainer.run_step(data)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return args.batch_size / statistics.median(times)


@torch.no_grad()
def inference_speed(args: argparse.Namespace, amp: str, channels_last: bool) -> float:
    model = make_model(args, channels_last).eval()
    images = torch.randn(args.test_batch_size, 3, args.height, args.width)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            model(images).float()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return args.test_batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="top_db_net")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8, help="training batch (P x K)")
    parser.add_argument("--num-instances", type=int, default=4)
    parser.add_argument("--test-batch-size", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=751)
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--iters", type=int, default=2, help="timed iterations (the median counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.model} ({args.backbone}) at {args.height}x{args.width}, train batch {args.batch_size}, "
          f"test batch {args.test_batch_size}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name in args.settings:
        amp, channels_last = SETTINGS[name]
        rows.append((name, train_speed(args, amp, channels_last), inference_speed(args, amp, channels_last)))
        print(f"  measured {name}", flush=True)
    best_train = max(rows, key=lambda r: r[1])[0]
    print(f"\n{'setting':<22}{'train img/s':>14}{'inference img/s':>18}")
    for name, train, infer in rows:
        print(f"{name:<22}{train:>14.1f}{infer:>18.1f}{'   <- fastest training' if name == best_train else ''}")


if __name__ == "__main__":
    main()
