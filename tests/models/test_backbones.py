"""Backbones: channel counts, last stride, pretrained weights from a file and deep-sort (torchvision's weights
and their download: test_pretrained.py)."""
from __future__ import annotations

import pytest
import torch
import torchvision

from reidkit.errors import CheckpointError, ConfigError
from reidkit.models import BACKBONES, build_backbone
from reidkit.models.pretrained import deepsort_weights_path, remap_legacy_mobilenet_v2


@pytest.mark.parametrize(
    "name, channels, stride1_map, stride2_map",
    [("resnet18", 512, (4, 2), (2, 1)), ("mobilenet_v2", 1280, (4, 2), (2, 1))],
)
def test_channels_and_last_stride(name, channels, stride1_map, stride2_map, tiny_batch):
    for last_stride, size in ((1, stride1_map), (2, stride2_map)):
        backbone = build_backbone(name, last_stride=last_stride).eval()
        assert backbone.out_channels == channels
        with torch.no_grad():
            assert backbone(tiny_batch).shape == (4, channels, *size)


def test_resnet_family_registered_with_torchvision_channels():
    assert set(BACKBONES.names()) >= {"resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2"}
    resnet34 = build_backbone("resnet34")
    assert resnet34.out_channels == 512 and resnet34.layer4[0].conv1.stride == (1, 1)
    assert resnet34.layer4[0].downsample[0].stride == (1, 1)
    resnet50 = build_backbone("resnet50", last_stride=1)
    assert resnet50.out_channels == 2048
    assert resnet50.layer4[0].conv2.stride == (1, 1) and resnet50.layer4[0].downsample[0].stride == (1, 1)
    assert resnet50.layer3[0].conv2.stride == (2, 2)


def test_bad_last_stride():
    with pytest.raises(ConfigError, match="last_stride must be 1 or 2, got 3"):
        build_backbone("resnet18", last_stride=3)


def test_deepsort_mobilenet_weights_are_remapped_and_loaded():
    legacy = torch.load(deepsort_weights_path(), map_location="cpu", weights_only=True)
    backbone = build_backbone("mobilenet_v2", pretrained="deepsort")
    state = backbone.state_dict()
    # expansion-1 block: [dw, bn, relu, pw, bn]; expanded block: [pw, bn, relu, dw, bn, relu, pw, bn]
    assert torch.equal(state["features.1.conv.0.0.weight"], legacy["features.1.conv.0.weight"])
    assert torch.equal(state["features.1.conv.1.weight"], legacy["features.1.conv.3.weight"])
    assert torch.equal(state["features.1.conv.2.running_var"], legacy["features.1.conv.4.running_var"])
    assert torch.equal(state["features.2.conv.1.0.weight"], legacy["features.2.conv.3.weight"])
    assert torch.equal(state["features.17.conv.3.bias"], legacy["features.17.conv.7.bias"])
    assert torch.equal(state["features.18.1.running_mean"], legacy["features.18.1.running_mean"])
    assert len(remap_legacy_mobilenet_v2(legacy)) == len(legacy) == len(state)


def test_deepsort_weights_only_fit_mobilenet():
    with pytest.raises(CheckpointError, match="MobileNetV2 weights; the backbone is resnet18"):
        build_backbone("resnet18", pretrained="deepsort")


def test_pretrained_path_and_mismatched_file(tmp_path):
    source = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.items()}}, path)
    backbone = build_backbone("resnet18", pretrained=str(path))
    assert torch.equal(backbone.bn1.running_var, source["bn1.running_var"])
    with pytest.raises(CheckpointError, match=r"does not fit the resnet34 backbone: missing layer1\.2\.conv1\.weight"):
        build_backbone("resnet34", pretrained=path)
    with pytest.raises(CheckpointError, match="'nope.pth': no such file, and not a weights name for resnet18 "
                                              r"\(expected a path, or one of imagenet, IMAGENET1K_V1, DEFAULT\)"):
        build_backbone("resnet18", pretrained="nope.pth")
