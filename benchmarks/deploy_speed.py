"""Inference speed of a deployed model, side by side: torch eager, TorchScript, onnxruntime fp32 and int8, for
ResNet-50 Top-DB-Net at 384x128 and MobileNetV2 Top-DB-Net at 128x64, batch 1 and 32; img/s, p50/p99 latency per
batch, parity (min cosine against torch eager) and, for int8, the mAP change on a Market-1501 split.

    .venv/bin/python benchmarks/deploy_speed.py --mobilenet runs/market_mini/top_db_net/checkpoints/last.pth \\
        --root MARKET_MINI --work /tmp/deploy_speed

--mobilenet: a checkpoint trained by benchmarks/market_mini.py (MobileNetV2 at 128x64); its int8 export is
calibrated on 256 crops of the split's training folder, and the mAP of the fp32 and int8 exports (Embedder
features, cosine distance) is measured on its query / gallery; a third int8 export keeps the layers matched by
--mobilenet-keep-fp32 (default its first blocks, '*/features.[0-3]/*') in fp32. The ResNet-50 model is the architecture with
torchvision's random initialisation (no ImageNet ResNet-50 is available offline): its timings are those of the
trained model, its int8 parity is not (no accuracy is claimed for it). Every backend runs on --threads threads
(torch.set_num_threads, onnxruntime intra-op threads), one after the other (taking turns call by call would
let onnxruntime's spinning worker threads slow the next backend down). Exported files go to --work, never into
the repository.

Targets (issue 15): onnxruntime fp32 >= 1.3x torch eager at batch 1; int8 >= 2x torch eager with mAP within 1.0
point of fp32. The load average is printed before and after: on a shared machine the figures move with it.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from reidkit.deploy.embedder import Embedder
from reidkit.deploy.export import compare, export_model
from reidkit.deploy.loading import FeatureModel, load_model, random_inputs
from reidkit.deploy.runtime import TorchRunner, open_onnx, open_torchscript
from reidkit.utils.io import atomic_write_json

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class Timing:
    model: str
    backend: str
    batch: int
    iterations: int
    p50_ms: float
    p99_ms: float
    images_per_s: float
    min_cosine: float | None


def time_runner(run: Runner, batch: np.ndarray, warmup: int, iterations: int) -> list[float]:
    """Seconds per call, after `warmup` calls; a pause first lets the previous backend's worker threads (onnxruntime
    spins them after each run) go idle."""
    time.sleep(1.0)
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return times


def write_resnet50_checkpoint(path: Path) -> Path:
    """ResNet-50 Top-DB-Net at 384x128 with torchvision's random initialisation, as a reidkit checkpoint."""
    from reidkit.config import config_from_dict
    from reidkit.engine.checkpoint import save_checkpoint
    from reidkit.models import build_model

    torch.manual_seed(0)
    model = build_model("top_db_net", 751, backbone="resnet50")
    cfg = config_from_dict({"model": {"name": "top_db_net", "backbone": "resnet50", "pretrained": None},
                            "data": {"height": 384, "width": 128}})
    save_checkpoint(path, model, epoch=0, config=cfg.to_dict())
    return path


def backends(checkpoint: Path, work: Path, calibration: Path | None, threads: int,
             keep_fp32: list[str]) -> dict[str, Runner]:
    """The runners of one model (exports written into `work`): torch eager, TorchScript, onnxruntime fp32, int8
    and, with `keep_fp32`, int8 with those layers left in fp32."""
    quiet = lambda line: None  # noqa: E731
    stem = work / checkpoint.stem
    export_model(checkpoint, stem.with_suffix(".onnx"), dynamic_batch=True, out=quiet)
    export_model(checkpoint, stem.with_suffix(".pt"), fmt="torchscript", out=quiet)
    runners: dict[str, Runner] = {
        "torch eager": TorchRunner(FeatureModel(load_model(checkpoint).model)),
        "TorchScript": open_torchscript(str(stem.with_suffix(".pt")))[0],
        "onnxruntime fp32": open_onnx(str(stem.with_suffix(".onnx")), threads=threads)[0],
    }
    if calibration is not None:
        int8 = stem.with_name(stem.name + "_int8.onnx")
        export_model(checkpoint, int8, dynamic_batch=True, quantize="int8", calibration=calibration, out=quiet)
        runners["onnxruntime int8"] = open_onnx(str(int8), threads=threads)[0]
    if calibration is not None and keep_fp32:
        mixed = stem.with_name(stem.name + "_int8_keep.onnx")
        export_model(checkpoint, mixed, dynamic_batch=True, quantize="int8", calibration=calibration,
                     keep_fp32=keep_fp32, out=quiet)
        runners[f"onnxruntime int8, {' '.join(keep_fp32)} fp32"] = open_onnx(str(mixed), threads=threads)[0]
    return runners


def measure(name: str, checkpoint: Path, work: Path, calibration: Path | None, parity_images: np.ndarray | None,
            args: argparse.Namespace, iterations: dict[int, tuple[int, int]], keep_fp32: list[str] = ()) -> list[Timing]:
    source = load_model(checkpoint)
    runners = backends(checkpoint, work, calibration, args.threads, list(keep_fp32))
    probe = parity_images if parity_images is not None else random_inputs(source, 8, seed=5)
    reference = runners["torch eager"](probe)
    cosines = {backend: None if backend == "torch eager" else compare(reference, run(probe), backend).min_cosine
               for backend, run in runners.items()}
    rows = []
    for batch, (warmup, count) in iterations.items():
        inputs = random_inputs(source, batch, seed=batch)
        for backend, run in runners.items():
            times = np.asarray(time_runner(run, inputs, warmup, count)) * 1000
            rows.append(Timing(name, backend, batch, count, float(np.percentile(times, 50)),
                               float(np.percentile(times, 99)), batch * 1000 / float(times.mean()), cosines[backend]))
            print(f"  {name:<28} {backend:<17} batch {batch:>2}: p50 {rows[-1].p50_ms:8.1f} ms  "
                  f"{rows[-1].images_per_s:7.1f} img/s", flush=True)
    return rows


def market_map(weights: Path, root: Path, threads: int) -> float:
    """mAP (Market protocol, cosine distance of the Embedder's L2-normalised features) of `weights`."""
    from reidkit.data import build_dataset
    from reidkit.metrics import compute_distance_matrix, evaluate_rank

    dataset = build_dataset("market1501", root)
    embedder = Embedder.load(weights, batch_size=64, threads=threads)
    feats = [embedder.embed([path for path, _, _ in subset]) for subset in (dataset.query, dataset.gallery)]
    ids = [np.asarray([s[i] for s in subset]) for subset in (dataset.query, dataset.gallery) for i in (1, 2)]
    _, mAP, _ = evaluate_rank(compute_distance_matrix(*feats, metric="cosine"), ids[0], ids[2], ids[1], ids[3])
    return float(mAP)


def image_inputs(folder: Path, source_path: Path, count: int) -> np.ndarray:
    from reidkit.deploy.export import image_batch

    return image_batch(folder, load_model(source_path), count)[0]


def format_table(rows: list[Timing], speedups: dict) -> str:
    lines = ["| model | backend | batch | img/s | p50 ms | p99 ms | x torch eager | min cosine vs eager |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cosine = "-" if r.min_cosine is None else f"{r.min_cosine:.6f}"
        lines.append(f"| {r.model} | {r.backend} | {r.batch} | {r.images_per_s:.1f} | {r.p50_ms:.1f} | "
                     f"{r.p99_ms:.1f} | {speedups[(r.model, r.backend, r.batch)]:.2f} | {cosine} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--mobilenet", type=Path, help="MobileNetV2 Top-DB-Net checkpoint from market_mini.py")
    parser.add_argument("--root", type=Path, help="Market-1501 split (Market-1501-v15.09.15/ inside) for the mAP")
    parser.add_argument("--work", type=Path, default=Path("/tmp/deploy_speed"), help="where exports are written")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resnet-iters", type=int, nargs=2, default=(10, 3), metavar=("B1", "B32"),
                        help="timed iterations of ResNet-50 at batch 1 and 32 (default 10 3)")
    parser.add_argument("--mobilenet-iters", type=int, nargs=2, default=(200, 20), metavar=("B1", "B32"))
    parser.add_argument("--mobilenet-keep-fp32", action="append", default=None, metavar="PATTERN",
                        help="also export MobileNetV2 to int8 with these nodes in fp32 (default '*/features.[0-3]/*')")
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    start = time.monotonic()
    rows: list[Timing] = []
    market = args.root / "Market-1501-v15.09.15" if args.root else None
    if not args.skip_resnet:
        resnet = write_resnet50_checkpoint(args.work / "top_db_net_resnet50.pth")
        calibration = market / "bounding_box_train" if market else None
        rows += measure("Top-DB-Net ResNet-50 384x128", resnet, args.work, calibration, None, args,
                        {1: (2, args.resnet_iters[0]), 32: (1, args.resnet_iters[1])})
    results: dict = {}
    if args.mobilenet:
        calibration = market / "bounding_box_train" if market else None
        probe = image_inputs(market / "query", args.mobilenet, 64) if market else None
        keep = args.mobilenet_keep_fp32 if args.mobilenet_keep_fp32 is not None else ["*/features.[0-3]/*"]
        rows += measure("Top-DB-Net MobileNetV2 128x64", args.mobilenet, args.work, calibration, probe, args,
                        {1: (20, args.mobilenet_iters[0]), 32: (3, args.mobilenet_iters[1])}, keep)
        if market:
            stem = args.work / args.mobilenet.stem
            files = {"fp32": stem.with_suffix(".onnx"), "int8": stem.with_name(stem.name + "_int8.onnx")}
            if keep:
                files[f"int8, {' '.join(keep)} fp32"] = stem.with_name(stem.name + "_int8_keep.onnx")
            results["mAP"] = {kind: market_map(path, args.root, args.threads) for kind, path in files.items()}
    eager = {(r.model, r.batch): r.images_per_s for r in rows if r.backend == "torch eager"}
    speedups = {(r.model, r.backend, r.batch): r.images_per_s / eager[(r.model, r.batch)] for r in rows}
    load_after = os.getloadavg()
    print(f"\n{format_table(rows, speedups)}")
    for kind, value in results.get("mAP", {}).items():
        change = 100 * (value - results["mAP"]["fp32"])
        print(f"MobileNetV2 mAP on {args.root}, onnxruntime {kind}: {100 * value:.2f}"
              + (f" (change {change:+.2f} points)" if kind != "fp32" else ""))
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{(time.monotonic() - start) / 60:.1f} min")
    atomic_write_json(args.work / "deploy_speed.json", {
        "settings": {k: str(v) for k, v in vars(args).items()}, "load_before": load_before, "load_after": load_after,
        "rows": [r.__dict__ for r in rows], "speedup_vs_eager": {" / ".join(map(str, k)): v for k, v in speedups.items()},
        **results})
    print(f"written: {args.work / 'deploy_speed.json'}")


if __name__ == "__main__":
    main()
