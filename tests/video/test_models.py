"""Video models through build_model: output shapes, attention ranges, the ASTA criterion."""
from __future__ import annotations

import pytest
import torch

import reidkit.models.asta  # noqa: F401  (registration, until models/__init__ imports it)
import reidkit.models.video  # noqa: F401
from reidkit.losses import CrossEntropyLabelSmooth, TripletLoss
from reidkit.losses.aitl import AITLCriterion, AITLLoss
from reidkit.losses.attribute import AttributeBCELoss
from reidkit.models import ModelOutput, build_model

T, H, W = 4, 64, 32
SMALL = {"backbone": "resnet18", "pretrained": None}


def clips(b: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, T, 3, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, options, dim", [
    ("video_tp", {}, 512), ("video_ta", {"frame_size": (H, W)}, 512), ("video_rnn", {"hidden": 64}, 64)])
def test_baseline_outputs(name, options, dim):
    model = build_model(name, num_classes=5, **SMALL, **options)
    out = model(clips())
    assert isinstance(out, ModelOutput) and list(out.streams) == ["global"]
    assert out["global"].logits.shape == (4, 5) and out["global"].features.shape == (4, dim)
    model.eval()
    with torch.no_grad():
        feature = model(clips())
        assert feature.shape == (4, dim) and model.feature_dim == dim
        assert model(clips()[:, 0]).shape == (4, dim)  # a batch of frames is a batch of one-frame clips
        assert model.backbone_features(clips(2)).shape == (2, 512, 4, 2)


def test_temporal_attention_weights_are_a_distribution_over_frames():
    model = build_model("video_ta", num_classes=5, frame_size=(H, W), **SMALL).eval()
    with torch.no_grad():
        maps, b, t = model.frame_maps(clips())
        weights = model.temporal.weights(maps, b, t)
    assert weights.shape == (4, T) and torch.allclose(weights.sum(1), torch.ones(4)) and (weights >= 0).all()
    with pytest.raises(ValueError, match="frame_size"):
        model(torch.randn(1, T, 3, 2 * H, W))


def test_asta_train_outputs_and_attention_ranges():
    model = build_model("asta", num_classes=5, frame_size=(H, W), attribute_dims={"irrelevant": 25, "relevant": 33},
                        **SMALL)
    out = model(clips())
    assert list(out.streams) == ["global", "attr_irrelevant", "attr_relevant"]
    assert out["global"].logits.shape == (4, 5) and out["global"].features.shape == (4, 3 * 512)
    assert out["attr_irrelevant"].logits.shape == (4, 25) and out["attr_relevant"].logits.shape == (4, 33)
    maps = model.attention_maps(clips())
    for name in ("reid", "irrelevant", "relevant"):
        assert maps[name].shape == (4, T, 1, 4, 2)
        assert 0 < maps[name].min() and maps[name].max() < 1
    assert model.attributes["relevant"].attention_t_conv.in_channels == 4 * 2  # h*w from the map size
    model.eval()
    with torch.no_grad():
        assert model(clips()).shape == (4, 3 * 512)
        assert model.predict_attributes(clips())["irrelevant"].shape == (4, 25)


def test_attribute_streams_do_not_train_the_backbone():
    model = build_model("asta", num_classes=5, frame_size=(H, W), **SMALL)
    out = model(clips())
    (out["attr_irrelevant"].logits.sum() + out["attr_relevant"].logits.sum()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.attributes["irrelevant"].classifier.weight.grad.abs().sum() > 0
    assert model.attributes["relevant"].attention_t_conv.weight.grad.abs().sum() > 0


def test_asta_resnet50_shapes():
    """The one real ResNet-50 forward: T=4 frames of 256x128 -> 16x8 maps, a 6144-d feature."""
    model = build_model("asta", num_classes=625, backbone="resnet50").eval()
    x = torch.randn(1, T, 3, 256, 128)
    with torch.no_grad():
        maps = model.attention_maps(x)
        assert maps["relevant"].shape == (1, T, 1, 16, 8)
        assert model.attributes["relevant"].attention_t_conv.in_channels == 128  # 16 x 8 positions
        assert model.attributes["relevant"].classifier.out_features == 41
        assert model(x).shape == (1, 6144) and model.feature_dim == 6144


def test_asta_criterion_combines_the_losses_as_specified():
    torch.manual_seed(0)
    model = build_model("asta", num_classes=3, frame_size=(H, W), **SMALL)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    targets = {"irrelevant": torch.randint(0, 2, (6, 25)).float(), "relevant": torch.randint(0, 2, (6, 41)).float()}
    out = model(clips(6))
    criterion = AITLCriterion(model)
    loss, parts = criterion(out, pids, targets)
    g = out["global"].features
    ce = CrossEntropyLabelSmooth(0.1)(out["global"].logits, pids)
    bh = TripletLoss(0.3, metric="cosine")(g, pids)
    aitl = [AITLLoss(0.0, include_self=False)(g, out[f"attr_{k}"].logits, pids) for k in ("irrelevant", "relevant")]
    bce = AttributeBCELoss()({k: out[f"attr_{k}"].logits for k in targets}, targets)
    assert loss.item() == pytest.approx((ce + (bh + aitl[0] + aitl[1]) / 3 + bce).item(), rel=1e-5)
    assert set(parts) == {"global/triplet", "global/ce", "attr_irrelevant/aitl", "attr_relevant/aitl", "attributes/bce"}
    loss.backward()
    with pytest.raises(ValueError, match="attribute targets"):
        criterion(model(clips(6)), pids)


def test_asta_criterion_needs_attribute_streams():
    with pytest.raises(Exception, match="no attribute streams"):
        AITLCriterion(build_model("video_tp", num_classes=3, **SMALL))


def test_attribute_metrics_on_tracklets(tmp_path):
    from reidkit.data.base import build_dataset
    from reidkit.data.video import build_video_test_loader
    from reidkit.engine.targets import tracklet_attribute_accuracy
    from reidkit.models.asta import predict_tracklet_attributes

    from .replicas import make_mars

    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    model = build_model("asta", data.num_train_pids, frame_size=(H, W), **SMALL)
    loaders = {s: build_video_test_loader(data, s, height=H, width=W, batch_size=4, seq_len=2)
               for s in ("query", "gallery")}
    logits = predict_tracklet_attributes(model, loaders["gallery"])
    assert logits["relevant"].shape == (3, 41) and model.training  # the mode is restored
    metrics = tracklet_attribute_accuracy(model, loaders, data)
    # only the first query has a label; every attribute of the replica's labels varies
    assert 0 <= metrics["attr/accuracy"] <= 1 and 0 <= metrics["attr/majority"] <= 1
    assert {"attr/action", "attr/upcolor/majority"} <= set(metrics)
    data.attributes["query"] = [None] * len(data.query)  # no labelled test tracklet: nothing to report
    assert tracklet_attribute_accuracy(model, loaders, data) == {}
