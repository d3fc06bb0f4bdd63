"""Export: every registered model to ONNX (and TorchScript) with parity against PyTorch, the metadata round
trip, both Embedder backends agreeing, INT8, one real ResNet-50 Top-DB-Net at 384x128, and bad input."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from reidkit.deploy.embedder import Embedder
from reidkit.deploy.export import MIN_COSINE, export_model
from reidkit.deploy.loading import load_model
from reidkit.deploy.metadata import FINGERPRINT_KEYS, REQUIRED, sidecar_path
from reidkit.errors import CheckpointError, ConfigError, ExportError
from reidkit.models import MODELS
from reidkit.models.video import VideoReidModel

from deploy_helpers import SEQ_LEN, randomize_batch_norm, write_plain_onnx


def _is_video(name: str) -> bool:
    return issubclass(MODELS.get(name), VideoReidModel)


def _onnx_metadata(path) -> dict:
    """Read back with onnx alone, as a consumer without reidkit would."""
    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def _features(embedder: Embedder, images: list, video: bool) -> np.ndarray:
    if video:
        return embedder.embed_clips([images[i:i + SEQ_LEN] for i in range(0, 3 * SEQ_LEN, SEQ_LEN)])
    return embedder.embed(images)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_exports_to_onnx_with_parity(name, checkpoint_of, crops_dir, tmp_path):
    checkpoint, output, lines = checkpoint_of(name), tmp_path / "model.onnx", []
    report = export_model(checkpoint, output, dynamic_batch=True, images=crops_dir, out=lines.append)
    assert [p.label.split(" ")[1] for p in report.parity] == ["random", "random", "of"]  # batch 1, 3, images
    assert all(p.min_cosine >= MIN_COSINE for p in report.parity), report.parity
    assert sum("parity fp32 vs PyTorch" in line for line in lines) == 3

    meta = _onnx_metadata(output)
    source = load_model(checkpoint)
    video = _is_video(name)
    assert set(REQUIRED) <= set(meta) and meta["model"] == name and meta["backbone"] == "resnet18"
    assert meta["input_size"] == [64, 32] and meta["feature_dim"] == source.model.feature_dim
    assert meta["input_layout"] == ("NTCHW" if video else "NCHW") and meta["seq_len"] == (SEQ_LEN if video else None)
    assert meta["normalized"] is True and meta["batch_size"] is None and meta["channel_order"] == "RGB"

    # The two backends give the same features, from a checkpoint and from its export.
    images = sorted(crops_dir.rglob("*.jpg"))
    from_checkpoint, from_onnx = Embedder.load(checkpoint), Embedder.load(output)
    assert (from_checkpoint.backend, from_onnx.backend) == ("torch", "onnxruntime")
    assert from_checkpoint.fingerprint == from_onnx.fingerprint
    a, b = _features(from_checkpoint, images, video), _features(from_onnx, images, video)
    assert a.shape == (3 if video else len(images), meta["feature_dim"]) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(a[0] - a[1]).max() > 1e-3  # the features are not collapsed: parity means something


@pytest.mark.parametrize("name", ["top_db_net", "video_rnn"])
def test_torchscript_export_carries_metadata_inside_and_beside(name, checkpoint_of, crops_dir, tmp_path):
    checkpoint, output = checkpoint_of(name), tmp_path / "model.pt"
    report = export_model(checkpoint, output, fmt="torchscript", out=lambda line: None)
    assert all(p.min_cosine >= MIN_COSINE for p in report.parity) and len(report.parity) == 2
    extra = {"reidkit.json": ""}
    torch.jit.load(str(output), _extra_files=extra)
    inside, beside = json.loads(extra["reidkit.json"]), json.loads(sidecar_path(output).read_text())
    assert inside == beside == report.metadata and inside["model"] == name

    images = sorted(crops_dir.rglob("*.jpg"))
    scripted = Embedder.load(output, batch_size=2)
    assert scripted.backend == "torch" and scripted.fingerprint == Embedder.load(checkpoint).fingerprint
    a, b = _features(Embedder.load(checkpoint), images, _is_video(name)), _features(scripted, images, _is_video(name))
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("name", ["top_db_net", "video_ta"])
def test_dynamo_exporter_gives_the_same_features(name, checkpoint_of, crops_dir, tmp_path):
    checkpoint, output = checkpoint_of(name), tmp_path / "model.onnx"
    report = export_model(checkpoint, output, exporter="dynamo", dynamic_batch=True, out=lambda line: None)
    assert all(p.min_cosine >= MIN_COSINE for p in report.parity)
    assert {o.version for o in onnx.load(str(output)).opset_import if o.domain == ""} == {18}
    images = sorted(crops_dir.rglob("*.jpg"))
    a = _features(Embedder.load(checkpoint), images, _is_video(name))
    assert np.abs(a - _features(Embedder.load(output), images, _is_video(name))).max() < 1e-5


def test_opsets_are_written_as_asked_or_refused(checkpoint_of, tmp_path):
    checkpoint = checkpoint_of("bot")
    export_model(checkpoint, tmp_path / "m17.onnx", opset=17, out=lambda line: None)
    assert {o.version for o in onnx.load(str(tmp_path / "m17.onnx")).opset_import if o.domain == ""} == {17}
    # torch's dynamo exporter silently keeps opset 18 when asked for 17: export refuses instead.
    with pytest.raises(ExportError, match="opset 18, not the requested 17.*--exporter torchscript"):
        export_model(checkpoint, tmp_path / "d17.onnx", exporter="dynamo", opset=17, out=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m17.onnx"]


def test_fixed_batch_export_pads_smaller_and_splits_larger_batches(checkpoint_of, crops_dir, tmp_path):
    checkpoint = checkpoint_of("top_db_net")
    report = export_model(checkpoint, tmp_path / "b1.onnx", out=lambda line: None)
    assert report.metadata["batch_size"] == 1
    images = sorted(crops_dir.rglob("*.jpg"))[:5]
    fixed = Embedder.load(tmp_path / "b1.onnx", batch_size=4)
    assert np.abs(fixed.embed(images) - Embedder.load(checkpoint).embed(images)).max() < 1e-5


def test_a_disagreeing_export_is_refused_and_not_written(checkpoint_of, tmp_path, monkeypatch):
    import reidkit.deploy.export as export

    real = export.open_onnx

    def drifting(path, device="cpu"):
        runner, meta = real(path, device)
        return (lambda batch: runner(batch) + 0.05 * np.random.default_rng(0).normal(size=(len(batch), 40))), meta

    monkeypatch.setattr(export, "open_onnx", drifting)
    with pytest.raises(ExportError, match=r"disagrees with PyTorch on 1 random inputs: min cosine 0\.\d+ < 0\.9999"):
        export_model(checkpoint_of("top_db_net"), tmp_path / "bad.onnx", out=lambda line: None)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one is left


def test_int8_export_reports_its_parity_and_loads(checkpoint_of, crops_dir, tmp_path):
    checkpoint, output, lines = checkpoint_of("top_db_net"), tmp_path / "int8.onnx", []
    report = export_model(checkpoint, output, dynamic_batch=True, quantize="int8", calibration=crops_dir,
                          out=lines.append)
    meta = _onnx_metadata(output)
    assert meta["precision"] == "int8" and report.metadata == meta
    assert all(p.min_cosine >= MIN_COSINE for p in report.parity)  # the fp32 graph before quantization
    assert [p.label.split(" ")[1] for p in report.int8_parity] == ["random", "of"]
    assert any(line.startswith("parity int8 vs PyTorch fp32") for line in lines)
    assert any(op.op_type == "QuantizeLinear" for op in onnx.load(str(output)).graph.node)
    int8, fp32 = Embedder.load(output), Embedder.load(checkpoint)
    assert int8.fingerprint["precision"] == "int8" and int8.fingerprint != fp32.fingerprint
    assert {k: v for k, v in int8.fingerprint.items() if k != "precision"} == \
           {k: v for k, v in fp32.fingerprint.items() if k != "precision"}
    images = sorted(crops_dir.rglob("*.jpg"))
    cosine = (int8.embed(images) * fp32.embed(images)).sum(axis=1)
    assert cosine.min() == pytest.approx(report.int8_parity[-1].min_cosine, abs=1e-4)
    assert cosine.min() > 0.9


def test_int8_layers_can_stay_fp32(checkpoint_of, crops_dir, tmp_path):
    checkpoint = checkpoint_of("top_db_net")
    report = export_model(checkpoint, tmp_path / "mixed.onnx", dynamic_batch=True, quantize="int8",
                          calibration=crops_dir, keep_fp32=["*/backbone/conv1/*", "*/backbone/layer1/*"],
                          out=lambda line: None)
    assert report.metadata["keep_fp32"] == ["*/backbone/conv1/*", "*/backbone/layer1/*"]
    graph = onnx.load(str(tmp_path / "mixed.onnx")).graph
    quantized_inputs = {i for n in graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    kept = [n for n in graph.node if n.op_type == "Conv" and "/backbone/layer1/" in n.name]
    later = [n for n in graph.node if n.op_type == "Conv" and "/backbone/layer3/" in n.name]
    assert kept and not any(i in quantized_inputs for n in kept for i in n.input)  # fp32 weights and inputs
    assert later and all(any(i in quantized_inputs for i in n.input) for n in later)
    with pytest.raises(ExportError, match="--int8-keep-fp32 '\\*/no_such_layer/\\*' matches no node"):
        export_model(checkpoint, tmp_path / "bad.onnx", quantize="int8", calibration=crops_dir,
                     keep_fp32=["*/no_such_layer/*"], out=lambda line: None)
    with pytest.raises(ConfigError, match="applies to --quantize int8"):
        export_model(checkpoint, tmp_path / "fp32.onnx", keep_fp32=["*"], out=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.onnx"]


def test_real_resnet50_top_db_net_reference_checkpoint_exports(tmp_path):
    """The model as published: ResNet-50 Top-DB-Net at 384x128, from a reference-format checkpoint."""
    from reidkit.models import build_model, to_reference_state_dict

    torch.manual_seed(0)
    model = build_model("top_db_net", 751, backbone="resnet50")
    randomize_batch_norm(model)
    torch.save({"state_dict": to_reference_state_dict(model), "epoch": 400}, tmp_path / "model.pth.tar-400")
    report = export_model(tmp_path / "model.pth.tar-400", tmp_path / "top_db_net.onnx", out=lambda line: None)
    assert report.parity[0].min_cosine >= MIN_COSINE
    meta = _onnx_metadata(tmp_path / "top_db_net.onnx")
    assert (meta["model"], meta["backbone"], meta["input_size"], meta["feature_dim"]) == \
           ("top_db_net", "resnet50", [384, 128], 1536)
    assert set(FINGERPRINT_KEYS) <= set(meta)


# ---------------------------------------------------------------------------------------------- bad input


def test_checkpoint_of_an_unknown_model_is_one_clear_error(checkpoint_of, tmp_path):
    obj = torch.load(checkpoint_of("bot"), weights_only=True)
    obj["config"]["model"]["name"] = "resnet_of_mine"
    torch.save(obj, tmp_path / "unknown.pth")
    with pytest.raises(CheckpointError, match="unknown.pth: holds a model named 'resnet_of_mine', which is not a "
                                              "registered model"):
        export_model(tmp_path / "unknown.pth", tmp_path / "out.onnx")
    with pytest.raises(CheckpointError, match="not a registered model"):
        Embedder.load(tmp_path / "unknown.pth")


def test_state_dict_without_config_asks_for_one(checkpoint_of, tmp_path):
    obj = torch.load(checkpoint_of("bot"), weights_only=True)
    torch.save(obj["model"], tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="fits no reference Top-DB-Net model.*pass the run's config"):
        Embedder.load(tmp_path / "bare.pth")
    del obj["config"]
    torch.save(obj, tmp_path / "noconfig.pth")
    with pytest.raises(CheckpointError, match="without a stored config"):
        Embedder.load(tmp_path / "noconfig.pth")


def test_export_files_with_missing_or_foreign_metadata_are_refused(checkpoint_of, tmp_path):
    write_plain_onnx(tmp_path / "plain.onnx")
    with pytest.raises(CheckpointError, match="plain.onnx: no reidkit export metadata.*reidkit export"):
        Embedder.load(tmp_path / "plain.onnx")
    write_plain_onnx(tmp_path / "foreign.onnx", {"format": "someone-else", "input_size": [1, 2]})
    with pytest.raises(CheckpointError, match="foreign.onnx: no reidkit export metadata \\(format 'someone-else'"):
        Embedder.load(tmp_path / "foreign.onnx")
    report = export_model(checkpoint_of("bot"), tmp_path / "good.onnx", out=lambda line: None)
    partial = {k: v for k, v in report.metadata.items() if k not in ("mean", "feature_dim")}
    write_plain_onnx(tmp_path / "partial.onnx", partial)
    with pytest.raises(CheckpointError, match="partial.onnx: export metadata lacks mean, feature_dim"):
        Embedder.load(tmp_path / "partial.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(tmp_path / "plain.pt"))
    with pytest.raises(CheckpointError, match="plain.pt: no reidkit export metadata"):
        Embedder.load(tmp_path / "plain.pt")


def test_bad_export_requests_are_one_clear_error(checkpoint_of, crops_dir, tmp_path):
    checkpoint = checkpoint_of("top_db_net")
    with pytest.raises(ConfigError, match="is the checkpoint itself"):
        export_model(checkpoint, checkpoint)
    with pytest.raises(ConfigError, match="--quantize int8 needs --calibration DIR"):
        export_model(checkpoint, tmp_path / "q.onnx", quantize="int8")
    with pytest.raises(ConfigError, match="--quantize int8 needs --format onnx"):
        export_model(checkpoint, tmp_path / "q.pt", fmt="torchscript", quantize="int8", calibration=crops_dir)
    with pytest.raises(ConfigError, match="video model"):
        export_model(checkpoint_of("video_tp"), tmp_path / "v.onnx", quantize="int8", calibration=crops_dir)
    with pytest.raises(ConfigError, match="--exporter 'tensorrt'"):
        export_model(checkpoint, tmp_path / "x.onnx", exporter="tensorrt")
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        export_model(tmp_path / "missing.pth", tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())
