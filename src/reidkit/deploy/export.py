"""`reidkit export`: a trained model as an ONNX or TorchScript file that needs no reidkit, checked against
PyTorch before it is put in place.

    report = export_model("runs/x/checkpoints/last.pth", "model.onnx", dynamic_batch=True)
    report.parity        # [Parity("random inputs", max_abs_diff, min_cosine), ...]

The graph is the eval-mode model followed by L2 normalisation (loading.FeatureModel); its input is the
normalised image batch [B, 3, H, W] (video models: [B, T, 3, H, W]). The file carries the metadata of
deploy/metadata.py. The export is written to a temporary file beside the output, run (onnxruntime or
torch.jit.load) against the PyTorch model on random inputs and, with `images`, on real images; below
MIN_COSINE (fp32) it is deleted and ExportError raised, otherwise it replaces the output.

ONNX exporter: the TorchScript-based one (`torchscript`, the default here: it exports every reidkit model with
parity, writes the opset asked for (default 17, which TensorRT 8.x reads) and takes a few seconds; torch marks
it deprecated) or the torch.export-based one (`dynamo`, torch's default since 2.9: also exact for every reidkit
model, but opset >= 18 only - it silently keeps 18 when asked for less, which export refuses - and 3-5x slower).
INT8: onnxruntime static quantization (QDQ, per-channel int8 weights, uint8 activations), calibrated on a
folder of crops, optionally with layers kept in fp32 (`keep_fp32`, deploy/quantize.py); its parity is reported,
not enforced.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from reidkit.deploy.loading import FeatureModel, ModelSource, load_model, random_inputs, weights_sha256
from reidkit.deploy.metadata import EXTRA_FILE, build_metadata, set_onnx_metadata, sidecar_path
from reidkit.deploy.preprocess import preprocess
from reidkit.deploy.runtime import Runner, TorchRunner, open_onnx, open_torchscript
from reidkit.errors import ConfigError, ExportError
from reidkit.metrics.verification import threshold_key
from reidkit.registry import Registry
from reidkit.utils.io import atomic_write_json

MIN_COSINE = 0.9999
PARITY_IMAGES = 64  # real images compared at most (evenly spaced over the folder)
CALIBRATION_IMAGES = 256
FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}
Printer = Callable[[str], None]
ONNX_EXPORTERS: Registry[Callable[..., None]] = Registry("ONNX exporter")


@dataclass
class Parity:
    label: str
    max_abs_diff: float
    min_cosine: float

    def __str__(self) -> str:
        return f"{self.label}: max |diff| {self.max_abs_diff:.2e}, min cosine {self.min_cosine:.7f}"


@dataclass
class ExportReport:
    path: Path
    metadata: dict[str, Any]
    parity: list[Parity] = field(default_factory=list)
    int8_parity: list[Parity] = field(default_factory=list)


def compare(reference: np.ndarray, candidate: np.ndarray, label: str) -> Parity:
    """Max absolute difference and the smallest row-wise cosine similarity of two feature arrays."""
    if reference.shape != candidate.shape:
        raise ExportError(f"{label}: the export returns shape {candidate.shape}, PyTorch {reference.shape}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12)
    return Parity(label, float(np.abs(reference - candidate).max()), float(cosine.min()))


def image_batch(folder: str | os.PathLike, source: ModelSource, limit: int) -> tuple[np.ndarray, int]:
    """Network inputs of at most `limit` images of `folder`, evenly spaced; (inputs, images in the folder).
    Video models get clips of seq_len consecutive images."""
    from reidkit.features.pipeline import folder_images as list_images

    files = list_images(folder)
    frames = source.seq_len or 1
    wanted = max(1, min(limit, len(files) // frames))
    starts = np.linspace(0, len(files) - frames, wanted).round().astype(int)
    picked = [files[s + t] for s in starts for t in range(frames)]
    inputs = preprocess(picked, source.preprocessing)
    return (inputs.reshape(len(starts), frames, *inputs.shape[1:]) if source.seq_len else inputs), len(files)


@contextlib.contextmanager
def staged(output: Path, suffix: str) -> Iterator[Path]:
    """A temporary path beside `output` that replaces it when the block succeeds and is deleted otherwise."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """The exporters' progress prints and deprecation warnings, kept for error messages only."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield buffer


@ONNX_EXPORTERS.register("dynamo")
def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, path: Path, *, dynamic_batch: bool,
                   opset: int) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["images"], output_names=["features"],
                      dynamic_shapes=shapes, opset_version=opset, external_data=False, verbose=False)


@ONNX_EXPORTERS.register("torchscript")
def _export_legacy(module: torch.nn.Module, example: torch.Tensor, path: Path, *, dynamic_batch: bool,
                   opset: int) -> None:
    axes = {"images": {0: "batch"}, "features": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["images"],
                      output_names=["features"], dynamic_axes=axes, opset_version=opset, do_constant_folding=True)


def _write_onnx(module: torch.nn.Module, source: ModelSource, path: Path, metadata: dict[str, Any], *,
                dynamic_batch: bool, opset: int, exporter: str) -> None:
    import onnx

    export = ONNX_EXPORTERS.get(exporter)
    example = torch.from_numpy(random_inputs(source, 2 if dynamic_batch else 1, seed=1))
    with _quiet() as log:
        try:
            export(module, example, path, dynamic_batch=dynamic_batch, opset=opset)
        except Exception as error:  # noqa: BLE001  (exporters raise many types; the message is what matters)
            tail = log.getvalue().strip().splitlines()[-3:]
            raise ExportError(f"the {exporter} ONNX exporter failed for {source.name}: {type(error).__name__}: "
                              f"{str(error).splitlines()[0][:300]}" + (f" ({' | '.join(tail)})" if tail else "")
                              ) from None
    proto = onnx.load(str(path))
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise ExportError(f"the {exporter} exporter wrote ONNX opset {written}, not the requested {opset}"
                          + ("; the dynamo exporter writes opset 18 and above: use --exporter torchscript"
                             if exporter == "dynamo" else ""))
    set_onnx_metadata(proto, metadata)
    onnx.save(proto, str(path))


def _write_torchscript(module: torch.nn.Module, source: ModelSource, path: Path, metadata: dict[str, Any]) -> None:
    import json

    example = torch.from_numpy(random_inputs(source, 2, seed=1))
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata)})


def _parity(reference: Runner, candidate: Runner, source: ModelSource, images: str | os.PathLike | None,
            batches: Sequence[int]) -> list[Parity]:
    results = []
    for batch in batches:
        inputs = random_inputs(source, batch, seed=2 + batch)
        results.append(compare(reference(inputs), candidate(inputs), f"{batch} random inputs"))
    if images is not None:
        inputs, total = image_batch(images, source, PARITY_IMAGES)
        results.append(compare(reference(inputs), candidate(inputs), f"{len(inputs)} of {total} images of {images}"))
    return results


def _enforce(parity: list[Parity], what: str) -> None:
    worst = min(parity, key=lambda p: p.min_cosine)
    if not worst.min_cosine >= MIN_COSINE:
        raise ExportError(f"{what} disagrees with PyTorch on {worst.label}: min cosine {worst.min_cosine:.6f} < "
                          f"{MIN_COSINE} (max |diff| {worst.max_abs_diff:.2e}); nothing was written")


def _check_request(fmt: str, quantize: str | None, calibration: Any, source: ModelSource, exporter: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if exporter not in ONNX_EXPORTERS:
        raise ConfigError(f"--exporter {exporter!r}: expected one of {', '.join(ONNX_EXPORTERS.names())}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r}: expected int8")
    if quantize and fmt != "onnx":
        raise ConfigError("--quantize int8 needs --format onnx (onnxruntime quantization)")
    if quantize and calibration is None:
        raise ConfigError("--quantize int8 needs --calibration DIR, a folder of crops like the ones it will see")
    if quantize and source.seq_len:
        raise ConfigError(f"--quantize int8: {source.name} is a video model; int8 export covers image models")


def export_model(weights: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "onnx",
                 dynamic_batch: bool = False, opset: int | None = None, exporter: str = "torchscript",
                 quantize: str | None = None, calibration: str | os.PathLike | None = None,
                 images: str | os.PathLike | None = None, threshold: float | None = None, config: Any = None,
                 trust_checkpoint: bool = False, keep_fp32: Sequence[str] = (), out: Printer = print) -> ExportReport:
    """Export `weights` to `output` (see the module docstring); returns what was written and measured."""
    output = Path(output)
    if output.exists() and output.resolve() == Path(weights).resolve():
        raise ConfigError(f"--output {output} is the checkpoint itself; choose another file (nothing was written)")
    source = load_model(weights, config=config, trust_checkpoint=trust_checkpoint)
    _check_request(fmt, quantize, calibration, source, exporter)
    if threshold is not None:
        source.metrics[threshold_key()] = float(threshold)
    module = FeatureModel(source.model)
    reference = TorchRunner(module)
    feature_dim = int(reference(random_inputs(source, 1)).shape[1])
    fixed = None if dynamic_batch or fmt == "torchscript" else 1
    metadata = build_metadata(source, feature_dim=feature_dim, weights_sha256=weights_sha256(source.model),
                              batch_size=fixed)
    report = ExportReport(output, metadata)
    if quantize:
        return _export_int8(module, source, reference, report, calibration, images,
                            dynamic_batch=dynamic_batch, opset=opset or DEFAULT_OPSET[exporter], exporter=exporter,
                            keep_fp32=keep_fp32, out=out)
    if keep_fp32:
        raise ConfigError("--int8-keep-fp32 applies to --quantize int8")
    with staged(output, output.suffix or ".tmp") as tmp:
        if fmt == "onnx":
            opset = opset or DEFAULT_OPSET[exporter]
            _write_onnx(module, source, tmp, metadata, dynamic_batch=dynamic_batch, opset=opset, exporter=exporter)
            candidate, _ = open_onnx(str(tmp))
        else:
            _write_torchscript(module, source, tmp, metadata)
            candidate, _ = open_torchscript(str(tmp))
        report.parity = _parity(reference, candidate, source, images, (1, 3) if fixed is None else (1,))
        _enforce(report.parity, f"the {fmt} export")
    if fmt == "torchscript":
        atomic_write_json(sidecar_path(output), metadata)
    _print_summary(report, fmt, opset, out)
    return report


def _export_int8(module: torch.nn.Module, source: ModelSource, reference: Runner, report: ExportReport,
                 calibration: str | os.PathLike, images: str | os.PathLike | None, *, dynamic_batch: bool,
                 opset: int, exporter: str, keep_fp32: Sequence[str], out: Printer) -> ExportReport:
    from reidkit.deploy.quantize import quantize_int8

    with tempfile.TemporaryDirectory(prefix="reidkit_export_") as work:
        fp32 = Path(work) / "fp32.onnx"
        _write_onnx(module, source, fp32, report.metadata, dynamic_batch=dynamic_batch, opset=opset,
                    exporter=exporter)
        report.parity = _parity(reference, open_onnx(str(fp32))[0], source, images, (1,))
        _enforce(report.parity, "the fp32 ONNX export (before quantization)")
        batch, total = image_batch(calibration, source, CALIBRATION_IMAGES)
        report.metadata = {**report.metadata, "precision": "int8", "keep_fp32": list(keep_fp32)}
        with staged(report.path, ".onnx") as tmp:
            kept = quantize_int8(fp32, tmp, batch, report.metadata, batch_size=None if dynamic_batch else 1,
                                 keep_fp32=keep_fp32)
            candidate, _ = open_onnx(str(tmp))
            parity_images = images if images is not None else calibration
            report.int8_parity = _parity(reference, candidate, source, parity_images, (1,))
    _print_summary(report, "onnx", opset, out)
    out(f"int8: calibrated on {len(batch)} of {total} images of {calibration}"
        + (f"; {len(kept)} nodes kept in fp32" if kept else ""))
    return report


def _print_summary(report: ExportReport, fmt: str, opset: int | None, out: Printer) -> None:
    meta = report.metadata
    frames = f"{meta['seq_len']}, " if meta["seq_len"] else ""
    kind = f"ONNX opset {opset}" if fmt == "onnx" else "TorchScript (metadata also in " \
                                                       f"{sidecar_path(report.path).name})"
    out(f"exported {meta['model']} ({meta['backbone']}) to {report.path}: {kind}, {meta['precision']}, batch "
        f"{meta['batch_size'] or 'any'}, input images [B, {frames}3, {meta['input_size'][0]}, "
        f"{meta['input_size'][1]}], {meta['feature_dim']} L2-normalised features"
        + (f", threshold {meta['threshold']:.4f}" if meta["threshold"] is not None else ""))
    for parity in report.parity:
        out(f"parity fp32 vs PyTorch, {parity}")
    for parity in report.int8_parity:
        out(f"parity int8 vs PyTorch fp32, {parity}")
