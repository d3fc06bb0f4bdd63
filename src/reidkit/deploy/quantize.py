"""INT8 ONNX: onnxruntime static quantization calibrated on real crops.

QDQ format, per-channel symmetric int8 weights, uint8 activations with MinMax calibration (onnxruntime's
defaults for CNNs on x86 with VNNI). The metadata of the fp32 file is written into the int8 one.

`keep_fp32`: fnmatch patterns of ONNX node names left in fp32, for layers that quantize badly. Measured on a
MobileNetV2 Top-DB-Net (docs/results/deploy.md): its first blocks (`*/features.[0-3]/*`) cost most of the
accuracy; ResNet-50 needs nothing kept.
"""
from __future__ import annotations

import fnmatch
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from reidkit.deploy.metadata import INPUT_NAME, set_onnx_metadata
from reidkit.errors import ExportError

CALIBRATION_BATCH = 16


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over an array of network inputs."""

    def __init__(self, inputs: np.ndarray, batch_size: int) -> None:
        self.inputs, self.batch_size = inputs, batch_size
        self.iterator: Iterator[np.ndarray] = self._chunks()

    def _chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.inputs), self.batch_size):
            yield self.inputs[start:start + self.batch_size]

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self.iterator, None)
        return None if chunk is None else {INPUT_NAME: chunk}

    def rewind(self) -> None:
        self.iterator = self._chunks()


def kept_nodes(model: Any, patterns: Sequence[str]) -> list[str]:
    """Names of the nodes of `model` that match one of `patterns`; a pattern matching none is an error."""
    names = [node.name for node in model.graph.node]
    kept = []
    for pattern in patterns:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ExportError(f"--int8-keep-fp32 {pattern!r} matches no node of the graph (names look like "
                              f"{names[0]!r}, {names[len(names) // 2]!r})")
        kept += matched
    return sorted(set(kept))


def quantize_int8(fp32: Path, output: Path, calibration: np.ndarray, metadata: Mapping[str, Any], *,
                  batch_size: int | None, keep_fp32: Sequence[str] = ()) -> list[str]:
    """Write the int8 version of the ONNX file `fp32` to `output`, calibrated on `calibration` inputs; returns
    the nodes kept in fp32."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ExportError("int8 calibration needs at least one image")
    with tempfile.TemporaryDirectory(prefix="reidkit_int8_") as work:
        prepared = Path(work) / "prepared.onnx"
        # The symbolic shape pass fails on torch.export graphs; ONNX shape inference and the graph
        # optimisation are what quantization needs.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        kept = kept_nodes(onnx.load(str(prepared)), keep_fp32)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # per-channel notices about 1-D BatchNorm weights, which stay per-tensor
        try:
            quantize_static(str(prepared), str(output), _Batches(calibration, batch_size or CALIBRATION_BATCH),
                            quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=kept)
        except Exception as error:  # noqa: BLE001  (onnxruntime's quantizer raises many types)
            raise ExportError(f"int8 quantization failed: {type(error).__name__}: {str(error)[:300]}") from None
        finally:
            root.setLevel(level)
    model = onnx.load(str(output))
    set_onnx_metadata(model, metadata)
    onnx.save(model, str(output))
    return kept
