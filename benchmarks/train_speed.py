"""Training and inference speed (images/s) of Top-DB-Net on this machine in fp32, bf16 autocast and
channels_last, in one table, to pick the fastest CPU setting as the default (train.amp, train.channels_last);
then the Trainer's overhead: the same model, batches, losses and optimizer trained by a bare PyTorch loop (no
hooks, no logging) and by Trainer.train() (with the LR-schedule and logging hooks of a run), alternately, from
the same weights and seed, so both compute the same losses (checked) and only the loop around them differs.

    .venv/bin/python benchmarks/train_speed.py                       # ResNet-50, 384x128, batch 8
    .venv/bin/python benchmarks/train_speed.py --backbone mobilenet_v2 --height 128 --width 64 --batch-size 64
    .venv/bin/python benchmarks/train_speed.py --settings --backbone resnet18 --height 128 --width 64  # overhead only

Synthetic tensors (no data loading): the numbers measure the model step of reidkit's Trainer (forward under
autocast, fp32 losses, backward, Adam step) and eval-mode feature extraction. Run it on an otherwise idle machine.
The defaults (batch 8, one untimed and two timed iterations) keep the whole table near 12 minutes on a 2-core CPU
without native bf16, where one bf16 ResNet-50 step at 384x128 takes over a minute.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time

import torch

from reidkit.config import OptimConfig
from reidkit.config import ScheduleConfig
from reidkit.utils.amp import autocast
from reidkit.engine.hooks import LoggerHook, LRSchedulerHook
from reidkit.engine.optim import build_optimizer, build_scheduler
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


def bare_loop(model: torch.nn.Module, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
              batches: list[dict], amp: str) -> list[torch.Tensor]:
    """The plain PyTorch training loop: forward, losses, backward, optimizer step; the losses, detached."""
    model.train()
    losses = []
    for data in batches:
        with autocast("cpu", amp):
            output = model(data["img"])
        loss, _ = criterion(output, data["pid"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return losses


class RecordLosses(LoggerHook):
    """The run's logging hook (no files beyond metrics.jsonl, no bar), also keeping each step's loss."""

    def after_step(self) -> None:
        super().after_step()
        self.losses.append(self.trainer.last_step.loss)


def trainer_loop(model: torch.nn.Module, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 batches: list[dict], amp: str, run_dir: str) -> list[float]:
    """One Trainer.train() epoch over `batches` with the hooks of a run (LR schedule, logging)."""
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="constant"), 1)
    logger = RecordLosses(run_dir, tensorboard=False, progress=False, print_fn=lambda _: None)
    logger.losses = []
    Trainer(model, criterion, optimizer, batches, epochs=1, scheduler=scheduler, amp=amp,
            hooks=[LRSchedulerHook(scheduler), logger]).train()
    return logger.losses


def overhead(args: argparse.Namespace) -> None:
    """Bare loop and Trainer, alternately for --rounds rounds of --overhead-steps steps from the same state."""
    model = make_model(args, False)
    criterion = build_criterion(model)
    optimizer = build_optimizer(model, OptimConfig())
    bare_loop(model, criterion, optimizer, [batch(args)], args.amp)  # Adam's state exists from here on
    start = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    batches = [batch(args) for _ in range(args.overhead_steps)]
    loops = {
        "bare PyTorch loop": lambda: [float(x) for x in bare_loop(model, criterion, optimizer, batches, args.amp)],
        "reidkit Trainer": lambda: trainer_loop(model, criterion, optimizer, batches, args.amp, run_dir),
    }
    times: dict[str, list[float]] = {name: [] for name in loops}
    same = True
    with tempfile.TemporaryDirectory() as run_dir:
        for round_index in range(args.rounds):
            losses = {}
            # Alternate which loop goes first, so that a drift in the machine's load favours neither.
            for name in list(times)[:: 1 if round_index % 2 == 0 else -1]:
                model.load_state_dict(start[0])
                optimizer.load_state_dict(copy.deepcopy(start[1]))  # it adopts the tensors it is given
                torch.manual_seed(round_index)
                tick = time.perf_counter()
                losses[name] = loops[name]()
                times[name].append(time.perf_counter() - tick)
            same = same and len(set(map(tuple, losses.values()))) == 1
            print(f"  round {round_index + 1}: bare {times['bare PyTorch loop'][-1]:.2f} s, "
                  f"Trainer {times['reidkit Trainer'][-1]:.2f} s", flush=True)
    bare, trainer = (statistics.median(t) for t in times.values())
    print(f"\n{'loop':<22}{'median s':>10}{'img/s':>10}   ({args.rounds} rounds of {args.overhead_steps} steps, "
          f"amp {args.amp})")
    for name, seconds in (("bare PyTorch loop", bare), ("reidkit Trainer", trainer)):
        print(f"{name:<22}{seconds:>10.2f}{args.batch_size * args.overhead_steps / seconds:>10.1f}")
    paired = statistics.median(t / b for b, t in zip(*times.values()))
    print(f"Trainer / bare = {trainer / bare:.3f} (overhead {trainer / bare - 1:+.1%}; median of the per-round "
          f"ratios {paired:.3f}); same losses in every round: {'yes' if same else 'NO'}; load average "
          f"{os.getloadavg()[0]:.2f}")


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
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS),
                        help="rows of the speed table (none: only the overhead comparison)")
    parser.add_argument("--overhead-steps", type=int, default=10, help="steps per round of the bare-loop vs "
                        "Trainer comparison (0: skip it)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the median counts)")
    parser.add_argument("--amp", default="none", help="train.amp of the overhead comparison")
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
    if rows:
        best_train = max(rows, key=lambda r: r[1])[0]
        print(f"\n{'setting':<22}{'train img/s':>14}{'inference img/s':>18}")
        for name, train, infer in rows:
            print(f"{name:<22}{train:>14.1f}{infer:>18.1f}{'   <- fastest training' if name == best_train else ''}")
    if args.overhead_steps:
        print("\nTrainer overhead", flush=True)
        overhead(args)


if __name__ == "__main__":
    main()
