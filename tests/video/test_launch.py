"""Video datasets through the engine's launch path (what `reidkit train` / `reidkit test` call): clip loaders,
chunked tracklet features, the AITL criterion, attribute accuracy, and the checks on the model options."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from torch import nn

from reidkit.config import load_config
from reidkit.data import build_dataset
from reidkit.engine.evaluator import Features, extract_features, sample_features
from reidkit.engine.launch import test as run_test
from reidkit.engine.launch import train, with_data_model_options
from reidkit.engine.trainer import Trainer
from reidkit.errors import ConfigError
from reidkit.losses import build_criterion
from reidkit.models import ModelOutput, Stream

from .replicas import make_ilidsvid, make_mars

TINY = ["data.height=64", "data.width=32", "data.workers=0", "model.backbone=resnet18", "model.pretrained=null",
        "model.options={last_stride: 1}", "train.batch_size=4", "data.num_instances=2", "train.epochs=1",
        "train.amp=none", "train.device=cpu", "train.threads=1", "test.batch_size=8", "test.eval_period=0",
        "checkpoint.period=0", "output.tensorboard=false", "output.progress=false", "output.report=false"]


def tiny_config(recipe: str, root, run_dir, *extra: str):
    return load_config(recipe, [f"data.root={root}", f"output.dir={run_dir}", *TINY, *extra])


def test_asta_trains_and_tests_through_launch(tmp_path):
    torch.manual_seed(0)
    make_mars(tmp_path / "data")
    cfg = tiny_config("configs/video/asta_aitl_mars.yaml", tmp_path / "data", tmp_path / "run",
                      "loss.include_self=true")
    result = train(cfg, out=lambda _: None)
    metrics = result.evaluation.flat()
    assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["attr/accuracy"] <= 1.0
    assert "attr/majority" in metrics and any(k.startswith("attr/upcolor") for k in metrics)
    history = [json.loads(line) for line in result.history.read_text().splitlines()]
    terms = ("global/triplet", "global/ce", "attr_relevant/aitl", "attributes/bce")
    assert {f"loss/{k}" for k in terms} <= set(history[-1])
    # The run's config holds the options derived from the data (attribute heads sized by the MARS schema).
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["model"]["options"]["attribute_dims"] == {"irrelevant": 25, "relevant": 41}
    assert stored["model"]["options"]["frame_size"] == [64, 32]
    assert json.loads(result.results.read_text())["metrics"]["attr/accuracy"] == metrics["attr/accuracy"]
    # `reidkit test` on the video checkpoint reproduces the final evaluation.
    lines: list[str] = []
    tested = run_test(cfg, result.checkpoint, out=lines.append).evaluation.flat()
    assert tested["mAP"] == pytest.approx(metrics["mAP"]) and tested["attr/accuracy"] == metrics["attr/accuracy"]
    assert any(line.startswith("attribute accuracy") for line in lines)


def test_attribute_less_video_set_trains_video_tp(tmp_path):
    torch.manual_seed(0)
    make_ilidsvid(tmp_path / "data")
    cfg = tiny_config("configs/video/asta_aitl_mars.yaml", tmp_path / "data", tmp_path / "run",
                      "data.name=ilidsvid", "model.name=video_tp", "model.options={}", "data.seq_len=2")
    metrics = train(cfg, out=lambda _: None).evaluation.flat()
    assert "mAP" in metrics and not any(k.startswith("attr/") for k in metrics)


def test_model_options_must_fit_the_data(tmp_path):
    make_mars(tmp_path / "mars")
    make_ilidsvid(tmp_path / "ilids")
    mars, ilids = build_dataset("mars", tmp_path / "mars"), build_dataset("ilidsvid", tmp_path / "ilids")
    cfg = tiny_config("configs/video/asta_aitl_mars.yaml", "x", "y")
    with pytest.raises(ConfigError, match="no attribute labels"):
        with_data_model_options(cfg, ilids)
    with pytest.raises(ConfigError, match="image model"):
        with_data_model_options(load_config(None, ["model.name=bot"]), mars)
    cfg.model.options["frame_size"] = [256, 128]
    with pytest.raises(ConfigError, match="model.options.frame_size"):
        with_data_model_options(cfg, mars)
    cfg.model.options.update(frame_size=[64, 32], attribute_dims={"irrelevant": 25, "relevant": 33})
    with pytest.raises(ConfigError, match="model.options.attribute_dims"):
        with_data_model_options(cfg, mars)


class RecordingCriterion(nn.Module):
    """An image criterion that also declares a batch target, and records what the trainer passes."""

    batch_targets = ("weight",)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = build_criterion(model), []

    def forward(self, output, pids, weight):
        self.seen.append(weight)
        loss, parts = self.inner(output, pids)
        return loss * weight.mean(), parts


class TinyClipModel(nn.Module):
    loss_spec = {"global": ("triplet", "ce")}

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.classifier = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        f = self.fc(x.mean((-1, -2)).flatten(0, -2).view(x.shape[0], -1, 3).mean(1))
        return ModelOutput({"global": Stream(self.classifier(f), f)}) if self.training else f


def test_trainer_passes_declared_batch_targets():
    model = TinyClipModel()
    batch = {"img": torch.rand(4, 2, 3, 8, 4), "pid": torch.tensor([0, 0, 1, 1]), "weight": torch.full((4,), 2.0)}
    criterion = RecordingCriterion(model)
    Trainer(model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), [batch], epochs=1).train()
    assert len(criterion.seen) == 1 and torch.equal(criterion.seen[0], batch["weight"])
    missing = {k: v for k, v in batch.items() if k != "weight"}
    with pytest.raises(ConfigError, match="'weight'"):
        Trainer(model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), [missing], epochs=1).train()


class WidthProbe(nn.Module):
    """Eval feature = the clip's first pixel column, so a flip along the width shows."""

    def forward(self, x):
        return x[..., 0].flatten(1)


def test_flip_is_along_the_width_for_clips_and_chunks_pool_per_tracklet():
    clips = torch.zeros(1, 2, 3, 4, 2)
    clips[..., 1] = 1.0  # last column ones: the flipped view's first column
    feats = extract_features(WidthProbe(), [{"img": clips, "pid": [1], "camid": [0]}], flip=True)
    assert torch.allclose(feats.features, torch.full((1, 24), 0.5))

    class Chunks:  # a loader whose dataset pools items back into samples (like VideoChunkDataset)
        class dataset:  # noqa: N801
            @staticmethod
            def pool_features(f):
                return Features(f.features.mean(0, keepdim=True), f.pids[:1], f.camids[:1])

    chunked = Features(torch.tensor([[1.0], [3.0]]), torch.tensor([5, 5]).numpy(), torch.tensor([0, 0]).numpy())
    assert sample_features(chunked, Chunks()).features.tolist() == [[2.0]]
    assert sample_features(chunked, [1, 2]) is chunked  # image loaders: unchanged


def test_build_model_criterion_picks_aitl_for_attribute_heads():
    from reidkit.losses import AITLCriterion, Criterion, build_model_criterion
    from reidkit.models import build_model

    asta = build_model("asta", 3, backbone="resnet18", frame_size=(64, 32), attribute_dims={"a": 3, "b": 2})
    criterion = build_model_criterion(asta, include_self=True, metric="cosine", margin=0.3)
    assert isinstance(criterion, AITLCriterion) and criterion.aitl.include_self and criterion.groups == ("a", "b")
    assert criterion.batch_targets == ("attributes",)
    assert type(build_model_criterion(build_model("video_tp", 3, backbone="resnet18"), margin=0.3)) is Criterion


def test_video_run_resumes_exactly(tmp_path):
    make_mars(tmp_path / "data")
    straight = tiny_config("configs/video/asta_aitl_mars.yaml", tmp_path / "data", tmp_path / "a", "train.epochs=2")
    first = train(straight, out=lambda _: None)
    half = tiny_config("configs/video/asta_aitl_mars.yaml", tmp_path / "data", tmp_path / "b", "train.epochs=1")
    train(half, out=lambda _: None)
    half.train.epochs = 2
    resumed = train(half, resume=tmp_path / "b", out=lambda _: None)
    assert first.checkpoint.parent != resumed.checkpoint.parent
    a, b = (torch.load(r.checkpoint, weights_only=False) for r in (first, resumed))
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_extract_of_a_video_dataset_writes_one_row_per_tracklet_at_the_data_size(tmp_path):
    """`reidkit extract --config` builds ASTA with the options the data implies (frame size from data.height /
    width, attribute heads from the schema) and pools each tracklet's test chunks into one row."""
    from reidkit.engine.checkpoint import save_checkpoint
    from reidkit.engine.launch import extract
    from reidkit.features.files import load_features
    from reidkit.models import build_model

    make_mars(tmp_path / "data")
    cfg = tiny_config("configs/video/asta_aitl_mars.yaml", tmp_path / "data", tmp_path / "run", "data.seq_len=2",
                      "data.max_chunks=null")
    dataset = build_dataset("mars", tmp_path / "data")
    torch.manual_seed(0)
    model = build_model("asta", dataset.num_train_pids, backbone="resnet18", last_stride=1, frame_size=(64, 32),
                        attribute_dims=dict(dataset.attribute_schema.group_dims))
    weights = save_checkpoint(tmp_path / "asta.pth", model, epoch=1, config=cfg.to_dict())
    feats = load_features(extract(cfg, weights, None, tmp_path / "features.npz", out=lambda _: None))
    assert feats["query_f"].shape[0] == len(dataset.query) and feats["gallery_f"].shape[0] == len(dataset.gallery)
    assert feats["gallery_label"].tolist() == [pid for _, pid, _ in dataset.gallery]
