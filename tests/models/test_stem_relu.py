"""model.options.stem_relu: false reproduces the AITL reference's ResNet, which goes from the stem BN straight to the
max pool (no ReLU); true (the default) is torchvision's stem."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models import build_model
from reidkit.models.backbones import build_backbone


def reference_stem_forward(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference's ResNet.forward, written out: conv1, bn1, maxpool, layer1..4."""
    x = backbone.maxpool(backbone.bn1(backbone.conv1(x)))
    return backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(x))))


def test_stem_relu_false_removes_exactly_the_stem_relu():
    torch.manual_seed(0)
    standard = build_backbone("resnet18").eval()
    reference = build_backbone("resnet18", stem_relu=False).eval()
    assert standard.state_dict().keys() == reference.state_dict().keys()  # same weights load into both
    reference.load_state_dict(standard.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        out_standard, out_reference = standard(x), reference(x)
        assert not torch.allclose(out_standard, out_reference, atol=1e-3)
        assert torch.allclose(out_reference, reference_stem_forward(standard, x), atol=1e-6)
        # The blocks keep their own ReLUs: only the stem changed.
        assert sum(isinstance(m, nn.ReLU) for m in reference.modules()) == sum(
            isinstance(m, nn.ReLU) for m in standard.modules()) - 1


def test_video_models_pass_the_option_to_their_backbone():
    torch.manual_seed(0)
    options = dict(backbone="resnet18", frame_size=[64, 32], attribute_dims={"a": 3, "b": 2})
    standard = build_model("asta", 4, **options).eval()
    reference = build_model("asta", 4, stem_relu=False, **options).eval()
    reference.load_state_dict(standard.state_dict())
    clip = torch.randn(2, 4, 3, 64, 32)
    with torch.no_grad():
        assert not torch.allclose(standard(clip), reference(clip), atol=1e-4)
        assert torch.allclose(reference.backbone(clip[0]), reference_stem_forward(standard.backbone, clip[0]),
                              atol=1e-6)
    for name in ("video_tp", "video_ta", "video_rnn"):
        extra = {"frame_size": [64, 32]} if name == "video_ta" else {}
        model = build_model(name, 4, backbone="resnet18", stem_relu=False, **extra)
        assert isinstance(model.backbone.relu, nn.Identity)


def test_stem_relu_is_checked():
    with pytest.raises(ConfigError, match="stem_relu must be true or false"):
        build_backbone("resnet18", stem_relu="no")
    with pytest.raises(ConfigError, match="mobilenet_v2 has no such stem"):
        build_backbone("mobilenet_v2", stem_relu=False)
    assert isinstance(build_backbone("mobilenet_v2", stem_relu=True), nn.Module)
