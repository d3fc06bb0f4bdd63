"""The reference's README workflow with reidkit, on drawn people at the tests' size: `reidkit train --config
im_top_bdnet_train_market1501.yaml --root DATA` (the reference's file unchanged, tiny overrides), then its test config
edited as the README says (model.load_weights, test.visrankactivthr) under `reidkit test --config`, no --weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reidkit.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "reference_configs"
# Small data, model and run: the reidkit keys win over the translation.
TINY = ["data.name=synthetic", "data.options={num_ids: 16, num_cams: 3, images_per_id_per_cam: [2, 3], height: 64, "
        "width: 32, seed: 0}", "data.height=64", "data.width=32", "data.workers=0", "model.backbone=resnet18",
        "model.pretrained=null", "train.epochs=1", "train.batch_size=8", "train.device=cpu", "train.threads=1",
        "test.batch_size=32", "test.max_rank=5", "output.progress=false", "output.tensorboard=false",
        "output.report=false"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference_run")
    argv = ["train", "--config", str(FIXTURES / "im_top_bdnet_train_market1501.yaml"), "--root", str(folder / "data"),
            "--output", str(folder / "run"), *TINY]
    assert main(argv) == 0
    return folder


def test_reference_training_config_trains_as_the_top_db_net_recipe(reference_run, capsys):
    run = reference_run / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name"] == "top_db_net" and saved["model"]["options"]["top_drop_epoch"] == 0
    assert (saved["schedule"]["name"], saved["optim"]["lr"], saved["loss"]["margin"]) == ("warmup_db", 5e-4, 0.3)
    assert "rerank/mAP" in json.loads((run / "results.json").read_text())["metrics"]


def test_reference_test_config_evaluates_its_load_weights(reference_run, tmp_path, capsys):
    test_config = yaml.safe_load((FIXTURES / "im_top_bdnet_test.yaml").read_text())
    test_config["model"]["load_weights"] = str(reference_run / "run" / "checkpoints" / "last.pth")
    test_config["data"]["save_dir"] = str(tmp_path / "log")
    test_config["test"]["visrankactivthr"] = True
    path = tmp_path / "im_top_bdnet_test.yaml"
    path.write_text(yaml.safe_dump(test_config))
    capsys.readouterr()
    assert main(["test", "--config", str(path), "--root", str(reference_run / "data"), *TINY,
                 "test.vis_queries=2"]) == 0
    out = capsys.readouterr().out
    assert "model.load_weights=" in out and "with re-ranking" in out
    drawn = sorted((tmp_path / "log" / "test" / "visualizations").rglob("*.jpg"))
    assert len(drawn) == 2 and drawn[0].parent.name == "visrankactivthr_synthetic"


def test_training_on_a_reference_test_config_is_refused(capsys):
    assert main(["train", "--config", str(FIXTURES / "im_top_bdnet_test.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error: ") and "test.evaluate=True" in err and "reidkit test --config" in err
