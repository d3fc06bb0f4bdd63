"""ft_net (ClassBlock head) through build_model."""
import pytest
import torch

import reidkit.models.ft_net  # noqa: F401  (registers ft_net until models/__init__ imports it)
from reidkit.errors import ConfigError
from reidkit.models import build_model, load_weights, model_options
from reidkit.models.outputs import ModelOutput


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("ft_net", num_classes=7, backbone="resnet18")


def test_eval_feature_is_the_512d_bn_output(model):
    model.eval()
    x = torch.rand(3, 3, 64, 64)
    feats = model(x)
    assert feats.shape == (3, 512) and model.feature_dim == 512
    pooled = model.backbone(x).mean(dim=(2, 3))
    expected = model.classifier.add_block[1](model.classifier.add_block[0](pooled))
    torch.testing.assert_close(feats, expected)


def test_train_output_stream(model):
    model.train()
    out = model(torch.rand(4, 3, 64, 64))
    assert isinstance(out, ModelOutput) and list(out.streams) == ["global"]
    assert out["global"].logits.shape == (4, 7) and out["global"].features.shape == (4, 512)
    assert model.loss_spec == {"global": ("ce",)}


def test_classblock_layout_and_init(model):
    block = model.classifier
    assert [type(m).__name__ for m in block.add_block] == ["Linear", "BatchNorm1d", "Dropout"]
    assert block.add_block[2].p == 0.5
    assert block.classifier[0].weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert abs(block.add_block[1].weight.mean().item() - 1.0) < 0.01
    assert 0.01 < block.add_block[1].weight.std().item() < 0.03
    fan_out_std = (2.0 / 512) ** 0.5  # Kaiming fan_out: std = sqrt(2 / out_features)
    assert block.add_block[0].weight.std().item() == pytest.approx(fan_out_std, rel=0.1)
    no_drop = build_model("ft_net", num_classes=3, backbone="resnet18", droprate=0.0)
    assert [type(m).__name__ for m in no_drop.classifier.add_block] == ["Linear", "BatchNorm1d"]


def test_avg_max_pool_doubles_width():
    m = build_model("ft_net", num_classes=3, backbone="resnet18", pool="avg+max").eval()
    assert m.classifier.add_block[0].in_features == 2 * 512
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    assert model_options("ft_net") == {"last_stride": 1, "pool": "avg", "droprate": 0.5, "bottleneck": 512}
    with pytest.raises(ConfigError, match="pool='max'"):
        build_model("ft_net", num_classes=3, backbone="resnet18", pool="max")
    with pytest.raises(ConfigError, match="droprate=1.5"):
        build_model("ft_net", num_classes=3, backbone="resnet18", droprate=1.5)


def test_loads_a_reference_checkpoint(model):
    # The reference holds torchvision's ResNet under `model.` (with its unused fc) and the same head names.
    reference = {("model." + k[len("backbone."):] if k.startswith("backbone.") else k): v.clone() + 1
                 for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    reference["model.fc.weight"] = torch.zeros(1000, 512)
    fresh = build_model("ft_net", num_classes=7, backbone="resnet18")
    report = load_weights(fresh, {"state_dict": {"module." + k: v for k, v in reference.items()}})
    assert report.ignored == ["model.fc.weight"]
    torch.testing.assert_close(fresh.backbone.conv1.weight, model.backbone.conv1.weight + 1)
    torch.testing.assert_close(fresh.classifier.classifier[0].weight, model.classifier.classifier[0].weight + 1)
