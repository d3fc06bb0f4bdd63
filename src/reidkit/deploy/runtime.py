"""Running a model on a batch of network inputs: the torch module, a TorchScript file, an ONNX file.

A runner maps a float32 array [B, 3, H, W] (or [B, T, 3, H, W]) to features [B, D]; `RUNNERS` registers one
opener per backend and kind of file:

    runner, metadata = open_export("model.onnx", backend="onnxruntime", device="cpu")
    features = runner(batch)
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable

import numpy as np

from reidkit.deploy.metadata import EXTRA_FILE, export_kind, parse_props, sidecar_path, validate
from reidkit.errors import CheckpointError, ConfigError
from reidkit.registry import Registry

Runner = Callable[[np.ndarray], np.ndarray]
DEFAULT_BACKENDS = {"onnx": "onnxruntime", "torchscript": "torch"}
# (kind of file, backend) -> opener(path, device) -> (runner, metadata)
RUNNERS: Registry[Callable[[str, str], tuple[Runner, dict[str, Any]]]] = Registry("model file runner")


class TorchRunner:
    """A torch module (nn.Module or TorchScript) on `device`, without gradients."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.module = module.to(self.device).eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.module(self.torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()


class OnnxRunner:
    """An onnxruntime session; `fixed_batch` pads smaller batches (and splits larger ones) for files exported
    with one batch size."""

    def __init__(self, session: Any, input_name: str, fixed_batch: int | None) -> None:
        self.session, self.input_name, self.fixed_batch = session, input_name, fixed_batch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None:
            return self.session.run(None, {self.input_name: batch})[0]
        size, outs = self.fixed_batch, []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            padded = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.session.run(None, {self.input_name: padded})[0][: len(chunk)])
        return np.concatenate(outs)


def onnx_providers(device: str) -> list[str]:
    import onnxruntime as ort

    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(device.split(":")[0])
    if wanted is None:
        raise ConfigError(f"device={device!r}: the onnxruntime backend runs on 'cpu' or 'cuda'")
    if wanted not in ort.get_available_providers():
        raise ConfigError(f"device={device!r}: this onnxruntime has no {wanted} (it has "
                          f"{', '.join(ort.get_available_providers())})")
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


@RUNNERS.register("onnx/onnxruntime")
def open_onnx(path: str, device: str = "cpu", *, threads: int = 0) -> tuple[OnnxRunner, dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=onnx_providers(device))
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None
    metadata = validate(parse_props(session.get_modelmeta().custom_metadata_map), path)
    return OnnxRunner(session, session.get_inputs()[0].name, metadata["batch_size"]), metadata


def _torchscript_metadata(path: str, extra: dict[str, Any]) -> dict[str, Any]:
    text = extra.get(EXTRA_FILE) or b""
    if not text and sidecar_path(path).is_file():
        text = sidecar_path(path).read_bytes()
    try:
        found = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: its reidkit metadata is not JSON ({error})") from None
    return validate(found if isinstance(found, dict) else {}, path)


@RUNNERS.register("torchscript/torch")
def open_torchscript(path: str, device: str = "cpu", *, threads: int = 0) -> tuple[TorchRunner, dict[str, Any]]:
    """A TorchScript file on `device` (torch's threads are a process-wide setting: `threads` is not used)."""
    import torch

    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's own deprecation notice
            module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    except Exception as error:  # noqa: BLE001
        raise CheckpointError(f"{path}: torch.jit.load cannot load it ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None
    return TorchRunner(module, device), _torchscript_metadata(path, extra)


def open_export(path: str | os.PathLike, *, backend: str | None = None, device: str = "cpu", threads: int = 0
                ) -> tuple[Runner, dict[str, Any]]:
    """Runner and validated metadata of an exported file (ONNX or TorchScript); `threads`: onnxruntime's
    intra-op threads (0: its default, one per core)."""
    path = os.fspath(path)
    kind = export_kind(path)
    if kind is None:
        raise CheckpointError(f"{path}: not an exported model (ONNX or TorchScript)")
    default = DEFAULT_BACKENDS[kind]
    key = f"{kind}/{backend or default}"
    if key not in RUNNERS:
        raise ConfigError(f"backend={backend!r} cannot run a {kind} file; use backend={default!r}")
    return RUNNERS.get(key)(path, device, threads=threads)
