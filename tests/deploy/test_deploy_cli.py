"""The deployment commands end to end on a tiny run: training stores the verification thresholds, `reidkit test`
reports the ROC, `reidkit export` writes a checked file carrying the threshold, `reidkit verify` uses it; bad
input is one line with exit code 2."""
from __future__ import annotations

import json

import onnx
import pytest
import torch
import yaml

from reidkit.cli import main

from deploy_helpers import write_plain_onnx


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy_cli")
    cfg = {
        "data": {"name": "synthetic", "root": str(folder / "data"), "height": 64, "width": 32, "num_instances": 4,
                 "workers": 0, "options": {"num_ids": 16, "num_cams": 3, "images_per_id_per_cam": [2, 3],
                                           "height": 64, "width": 32, "seed": 0}},
        "model": {"name": "top_db_net", "backbone": "resnet18", "pretrained": None,
                  "options": {"global_dim": 16, "drop_dim": 24}},
        "optim": {"lr": 1e-3}, "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1, "seed": 0},
        "test": {"batch_size": 32, "eval_period": 0, "rerank": False, "max_rank": 5},
        "checkpoint": {"period": 0},
        "output": {"dir": str(folder / "run"), "progress": False, "tensorboard": False},
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(folder / "tiny.yaml")]) == 0
    return folder


def _query_images(run):
    return sorted((run / "data" / "Market-1501-v15.09.15" / "query").glob("*.jpg"))


def test_training_and_test_report_the_verification_roc(run, capsys):
    checkpoint = run / "run" / "checkpoints" / "last.pth"
    stored = torch.load(checkpoint, weights_only=True)["metrics"]
    assert {"verify/TPR@1e-2", "verify/threshold@1e-2", "verify/TPR@1e-3", "verify/threshold@1e-3",
            "verify/threshold@1e-4"} <= set(stored)
    assert main(["test", "--weights", str(checkpoint), "--no-rerank"]) == 0
    out = capsys.readouterr().out
    assert "verification over" in out and "at FPR 1e-3 (cosine >" in out
    metrics = json.loads((run / "run" / "test" / "results.json").read_text())["metrics"]
    assert -1.0 <= metrics["verify/threshold@1e-3"] <= 1.0 and 0.0 <= metrics["verify/TPR@1e-3"] <= 1.0
    assert metrics["verify/threshold@1e-3"] == pytest.approx(stored["verify/threshold@1e-3"], abs=1e-6)
    assert (run / "run" / "test" / "report_files" / "roc.png").is_file()
    assert "roc.png" in (run / "run" / "test" / "report.html").read_text()


def test_export_then_verify_with_the_stored_threshold(run, tmp_path, capsys):
    checkpoint = run / "run" / "checkpoints" / "last.pth"
    threshold = torch.load(checkpoint, weights_only=True)["metrics"]["verify/threshold@1e-3"]
    output = tmp_path / "model.onnx"
    images = run / "data" / "Market-1501-v15.09.15" / "query"
    assert main(["export", "--weights", str(checkpoint), "--output", str(output), "--dynamic-batch",
                 "--images", str(images)]) == 0
    out = capsys.readouterr().out
    assert f"threshold {threshold:.4f}" in out and out.count("parity fp32 vs PyTorch") == 3
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(output)).metadata_props}
    assert meta["threshold"] == pytest.approx(threshold) and set(meta["thresholds"]) == {"1e-2", "1e-3", "1e-4"}

    a, b = (str(p) for p in _query_images(run)[:2])
    for weights in (checkpoint, output):
        assert main(["verify", a, a, "--weights", str(weights)]) == 0
        line = capsys.readouterr().out.strip()
        assert line.startswith("cosine similarity 1.0000: same") and "calibrated at FPR 1e-3" in line
    from reidkit.deploy.embedder import Embedder

    fa, fb = Embedder.load(output).embed([a, b])
    similarity = float(fa @ fb)
    assert main(["verify", a, b, "--weights", str(output), "--threshold", str(similarity + 0.01)]) == 0
    assert capsys.readouterr().out.strip() == (f"cosine similarity {similarity:.4f}: different (threshold "
                                               f"{similarity + 0.01:.4f}, given)")
    assert main(["verify", a, b, "--weights", str(output), "--threshold", str(similarity - 0.01)]) == 0
    assert ": same (threshold" in capsys.readouterr().out


def test_torchscript_export_from_the_command_line(run, tmp_path, capsys):
    checkpoint = run / "run" / "checkpoints" / "last.pth"
    assert main(["export", "--weights", str(checkpoint), "--format", "torchscript", "--output",
                 str(tmp_path / "model.pt"), "--threshold", "0.5"]) == 0
    assert "TorchScript (metadata also in model.pt.json)" in capsys.readouterr().out
    assert json.loads((tmp_path / "model.pt.json").read_text())["threshold"] == 0.5


@pytest.mark.parametrize("argv, expected", [
    (["export", "--weights", "{tmp}/missing.pth", "--output", "{tmp}/m.onnx"], "checkpoint file not found"),
    (["export", "--weights", "{ckpt}", "--output", "{tmp}/m.onnx", "--quantize", "int8"], "needs --calibration"),
    (["export", "--weights", "{ckpt}", "--output", "{ckpt}"], "is the checkpoint itself"),
    (["verify", "{img}", "{tmp}/nope.jpg", "--weights", "{ckpt}"], "image 1 ("),
    (["verify", "{img}", "{img}", "--weights", "{tmp}/plain.onnx"], "no reidkit export metadata"),
    (["verify", "{img}", "{img}", "--weights", "{tmp}/bare.pth"], "fits no reference Top-DB-Net model"),
])
def test_bad_input_is_one_line(run, tmp_path, capsys, argv, expected):
    checkpoint = run / "run" / "checkpoints" / "last.pth"
    write_plain_onnx(tmp_path / "plain.onnx")
    torch.save(torch.load(checkpoint, weights_only=True)["model"], tmp_path / "bare.pth")
    fill = {"tmp": str(tmp_path), "ckpt": str(checkpoint), "img": str(_query_images(run)[0])}
    capsys.readouterr()
    assert main([arg.format(**fill) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error: ") and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_verify_without_any_threshold_says_how_to_give_one(run, tmp_path, capsys):
    from reidkit.deploy.export import export_model

    export_model(run / "run" / "checkpoints" / "last.pth", tmp_path / "m.onnx", out=lambda line: None)
    model = onnx.load(str(tmp_path / "m.onnx"))
    for prop in model.metadata_props:
        if prop.key == "threshold":
            prop.value = "null"
    onnx.save(model, str(tmp_path / "m.onnx"))
    image = str(_query_images(run)[0])
    assert main(["verify", image, image, "--weights", str(tmp_path / "m.onnx")]) == 2
    captured = capsys.readouterr()
    assert captured.out.strip() == "cosine similarity 1.0000"
    assert "carries no calibrated threshold: pass --threshold T" in captured.err


def test_extract_takes_exported_models(run, tmp_path, capsys):
    import numpy as np

    checkpoint = run / "run" / "checkpoints" / "last.pth"
    images = run / "data" / "Market-1501-v15.09.15" / "query"
    assert main(["export", "--weights", str(checkpoint), "--output", str(tmp_path / "m.onnx"), "--dynamic-batch"]) == 0
    assert main(["extract", "--weights", str(tmp_path / "m.onnx"), "--images", str(images),
                 "--output", str(tmp_path / "onnx.npz")]) == 0
    assert main(["extract", "--weights", str(checkpoint), "--images", str(images),
                 "--output", str(tmp_path / "torch.npz")]) == 0
    exported, native = np.load(tmp_path / "onnx.npz"), np.load(tmp_path / "torch.npz")
    assert list(exported["paths"]) == list(native["paths"])
    plain = native["features"] / np.linalg.norm(native["features"], axis=1, keepdims=True)
    assert np.abs(exported["features"] - plain).max() < 1e-5  # the same features, L2-normalised
    capsys.readouterr()
    assert main(["extract", "--weights", str(tmp_path / "m.onnx"), "--weights", str(checkpoint), "--images",
                 str(images), "--output", str(tmp_path / "mixed.npz")]) == 2
    assert "cannot be mixed with checkpoints" in capsys.readouterr().err
    assert main(["extract", "--weights", str(tmp_path / "m.onnx"), "--images", str(images), "--flip",
                 "--output", str(tmp_path / "flip.npz")]) == 2
    assert "need the PyTorch model" in capsys.readouterr().err
