"""The vehicle recipe through `reidkit train`, and every image model of reidkit on vehicle batches."""
import json

import pytest
import torch

from reidkit.cli import main as reidkit_main
from reidkit.data import build_dataset, build_train_loader
from reidkit.data.vehicle.synthetic import SyntheticVehicleConfig
from reidkit.losses import build_criterion
from reidkit.models import build_model

TINY = SyntheticVehicleConfig(num_train_ids=4, num_test_ids=3, num_cams=3, max_cams_per_id=3, min_frames=2,
                              max_frames=3, min_size=24, max_size=32, seed=3)
OPTIONS = {k: getattr(TINY, k) for k in TINY.__dataclass_fields__}
IMAGE_MODELS = ["ft_net", "bot", "bdb", "top_db_net", "top_db_net_no_drop", "top_db_net_no_reg"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("vehicles")
    build_dataset("synthetic_vehicles", path, **OPTIONS)  # generate once
    return path


def test_reidkit_train_runs_the_vehicle_recipe(root, tmp_path):
    run = tmp_path / "run"
    options = json.dumps(OPTIONS).replace('"', "")
    argv = ["train", "--config", "configs/vehicle/synthetic_ft_net.yaml", "--root", str(root), "--output", str(run),
            f"data.options={options}", "data.height=32", "data.width=32", "data.sampler=balanced",
            "model.pretrained=null", "model.backbone=resnet18", "train.epochs=1", "train.batch_size=8",
            "loss.warmup_epochs=1", "output.progress=false", "test.batch_size=16"]
    assert reidkit_main(argv) == 0
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1] and "mAP" in history[-1]
    ckpt = torch.load(run / "checkpoints" / "last.pth", weights_only=False)
    head, backbone = ckpt["optimizer"]["param_groups"]
    assert backbone["lr"] == pytest.approx(0.1 * head["lr"])  # optim.backbone_lr_factor of the recipe


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_image_model_trains_on_vehicle_batches(root, name):
    dataset = build_dataset("synthetic_vehicles", root, **OPTIONS)
    loader = build_train_loader(dataset.train, height=32, width=32, batch_size=8, num_instances=2,
                                recipe="vehicle", seed=0)
    batch = next(iter(loader))
    torch.manual_seed(0)
    model = build_model(name, dataset.num_train_pids, backbone="resnet18", pretrained=None)
    loss, _ = build_criterion(model)(model(batch["img"]), batch["pid"])
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    assert model(batch["img"]).shape == (8, model.feature_dim)
