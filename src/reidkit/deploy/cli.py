"""`reidkit export` and `reidkit verify`: their arguments (added to the main parser by reidkit.cli) and what
they run. Nothing heavy is imported until a command runs."""
from __future__ import annotations

import argparse
from typing import Callable

from reidkit.errors import ConfigError

Printer = Callable[[str], None]

EXPORT_EPILOG = """examples:
  reidkit export --weights runs/demo/checkpoints/last.pth --output model.onnx --dynamic-batch
  reidkit export --weights model.pth.tar-400 --format torchscript --output model.pt --images crops/
  reidkit export --weights last.pth --output model_int8.onnx --dynamic-batch --quantize int8 --calibration crops/

The file takes normalised image batches [B, 3, H, W] (video models [B, T, 3, H, W]) and returns L2-normalised
features; it carries input size, channel order, mean/std, feature dimension, model name, reidkit version, a
weights fingerprint and the calibrated verification threshold (ONNX metadata_props; TorchScript: inside the
archive and in FILE.json). After writing, the export is run against PyTorch on random inputs and, with --images,
on up to 64 real images; below cosine 0.9999 (fp32) nothing is written and the command fails. INT8 (onnxruntime
static quantization, calibrated on up to 256 crops of --calibration) reports its parity. See docs/deploy.md."""

VERIFY_EPILOG = """examples:
  reidkit verify a.jpg b.jpg --weights runs/demo/checkpoints/last.pth
  reidkit verify a.jpg b.jpg --weights model.onnx --threshold 0.55

Prints the cosine similarity of the two images' features and 'same' when it is above the threshold: --threshold,
else the one calibrated by the model's evaluation (TPR at FPR 1e-3 over query-gallery pairs, stored in the
checkpoint by training and in the exported file)."""


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML",
                        help="the run's config, for a checkpoint that does not store one (default: the stored one)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle a checkpoint that holds more than tensors (only for files you trust)")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="CKPT",
                        help="reidkit checkpoint, reference Top-DB-Net checkpoint or state dict (with --config)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the file to write (.onnx, .pt)")
    parser.add_argument("--format", default="onnx", choices=("onnx", "torchscript"), help="default onnx")
    parser.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default 17; dynamo: 18)")
    parser.add_argument("--exporter", default="torchscript", choices=("torchscript", "dynamo"),
                        help="torch's ONNX exporter: TorchScript-based (default) or torch.export-based")
    parser.add_argument("--quantize", choices=("int8",), help="onnxruntime static INT8 quantization")
    parser.add_argument("--calibration", metavar="DIR", help="folder of crops calibrating --quantize int8")
    parser.add_argument("--int8-keep-fp32", action="append", default=[], metavar="PATTERN",
                        help="ONNX node names (fnmatch pattern, repeatable) left in fp32, e.g. "
                             "'*/features.[0-3]/*' for MobileNetV2's first blocks")
    parser.add_argument("--images", metavar="DIR", help="also check parity on (up to 64) images of this folder")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="verification threshold to store (default: the one in the checkpoint's metrics)")
    _add_model_arguments(parser)


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs=2, metavar="IMAGE", help="the two crops to compare")
    parser.add_argument("--weights", required=True, metavar="FILE",
                        help="checkpoint, reference checkpoint, exported .onnx or TorchScript file")
    parser.add_argument("--threshold", type=float, metavar="T", help="cosine threshold (default: the stored one)")
    parser.add_argument("--device", default="cpu", metavar="DEV", help="cpu or cuda (default cpu)")
    _add_model_arguments(parser)


def run_export(args: argparse.Namespace, out: Printer = print) -> int:
    from reidkit.deploy.export import export_model

    export_model(args.weights, args.output, fmt=args.format, dynamic_batch=args.dynamic_batch, opset=args.opset,
                 exporter=args.exporter, quantize=args.quantize, calibration=args.calibration, images=args.images,
                 threshold=args.threshold, config=args.config, trust_checkpoint=args.trust_checkpoint,
                 keep_fp32=args.int8_keep_fp32, out=out)
    return 0


def run_verify(args: argparse.Namespace, out: Printer = print) -> int:
    from reidkit.deploy.embedder import Embedder

    embedder = Embedder.load(args.weights, device=args.device, trust_checkpoint=args.trust_checkpoint,
                             config=args.config)
    first, second = embedder.embed(list(args.images))
    similarity = float(first @ second)
    threshold = args.threshold if args.threshold is not None else embedder.threshold
    if threshold is None:
        out(f"cosine similarity {similarity:.4f}")
        raise ConfigError(f"{args.weights} carries no calibrated threshold: pass --threshold T (reidkit test "
                          "reports the thresholds at FPR 1e-2, 1e-3, 1e-4)")
    where = "given" if args.threshold is not None else "calibrated at FPR 1e-3"
    verdict = "same" if similarity > threshold else "different"
    out(f"cosine similarity {similarity:.4f}: {verdict} (threshold {threshold:.4f}, {where})")
    return 0
