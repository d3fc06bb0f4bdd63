"""Model shapes, train/eval outputs, epoch switching, and equality with a re-statement of the reference."""
from __future__ import annotations

import random

import pytest
import torch
from oracles.top_db_net import build_reference

from reidkit.errors import ConfigError, RegistryError
from reidkit.models import MODELS, ModelOutput, build_model, model_options, to_reference_state_dict

# name -> (train streams, eval dim on resnet18 where C = 512)
EXPECTED = {
    "top_db_net": (["global", "drop", "reg"], 512 + 1024),
    "top_db_net_no_reg": (["global", "drop"], 512 + 1024),
    "top_db_net_no_drop": (["global", "reg"], 512 + 512),
    "bdb": (["global", "drop"], 512 + 1024),
    "bot": (["global"], 512),
}
FEATURE_DIMS = {"global": 512, "drop": 1024, "reg": 512}


def test_importing_models_registers_the_issue_3_models():
    assert set(EXPECTED) <= set(MODELS.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_train_and_eval(name, tiny_batch):
    streams, dim = EXPECTED[name]
    model = build_model(name, num_classes=7, backbone="resnet18")
    model.train()
    out = model(tiny_batch)
    assert isinstance(out, ModelOutput) and list(out.streams) == streams
    for stream_name, stream in out.streams.items():
        assert stream.logits.shape == (4, 7)
        width = 512 if name == "bot" else FEATURE_DIMS[stream_name]
        assert stream.features.shape == (4, width)
    model.eval()
    with torch.no_grad():
        feats = model(tiny_batch)
        assert feats.shape == (4, dim) and model.feature_dim == dim
        # last stride 1: 64x32 -> 4x2
        assert model.backbone_features(tiny_batch).shape == (4, 512, 4, 2)
    assert callable(getattr(model, "drop_mask", None)) == (name in ("top_db_net", "top_db_net_no_reg", "bdb"))


def test_resnet50_top_db_net_at_384x128():
    """The one real ResNet-50 forward: 384x128 -> F 2048x24x8 -> 1536-d eval feature."""
    model = build_model("top_db_net", num_classes=751).eval()
    seen = {}
    model.backbone.register_forward_hook(lambda m, i, o: seen.update(fmap=o.shape))
    with torch.no_grad():
        feats = model(torch.randn(2, 3, 384, 128))
    assert seen["fmap"] == (2, 2048, 24, 8)
    assert feats.shape == (2, 1536) and model.feature_dim == 1536


def test_mobilenet_backbone_heads_sized_from_channels(tiny_batch):
    model = build_model("top_db_net_no_drop", num_classes=3, backbone="mobilenet_v2").eval()
    with torch.no_grad():
        assert model(tiny_batch).shape == (4, 512 + 1280)


def test_eval_features_are_post_bn_and_bdb_post_relu(tiny_batch):
    torch.manual_seed(0)
    model = build_model("top_db_net", num_classes=5, backbone="resnet18")
    model.train()
    model(tiny_batch)  # move the running stats away from the init
    model.eval()
    with torch.no_grad():
        feats = model(tiny_batch)
        fmap = model.backbone(tiny_batch)
        t_global = model.global_reduction(model.avgpool(fmap)).flatten(1)
        assert torch.allclose(feats[:, :512], model.global_neck(t_global))
        assert (feats < 0).any(), "post-BN features take negative values"
    bdb = build_model("bdb", num_classes=5, backbone="resnet18").eval()
    with torch.no_grad():
        assert (bdb(tiny_batch) >= 0).all()


def _which_drop(model, x):
    calls = []
    model.top_drop.register_forward_hook(lambda *a: calls.append("top"))
    model.batch_drop.register_forward_hook(lambda *a: calls.append("batch"))
    model.train()
    model(x)
    return calls


def test_set_epoch_switches_to_top_drop_at_top_drop_epoch(tiny_batch):
    model = build_model("top_db_net", num_classes=5, backbone="resnet18", top_drop_epoch=3)
    seen = []
    for epoch in range(4):  # the trainer passes 0-based epoch indices; top_drop_epoch counts from 1
        model.set_epoch(epoch)
        seen.append(model.drop_top)
    assert seen == [False, False, True, True]
    model.set_epoch(0)
    assert _which_drop(model, tiny_batch) == ["batch"]
    default = build_model("top_db_net_no_reg", num_classes=5, backbone="resnet18")
    assert default.drop_top, "top_drop_epoch defaults to 0: Top DropBlock from the start"
    never = build_model("top_db_net", num_classes=5, backbone="resnet18", top_drop_epoch=None)
    never.set_epoch(399)
    assert not never.drop_top


def test_drop_mask_is_the_training_top_mask():
    model = build_model("top_db_net", num_classes=5, backbone="resnet18").eval()
    x = torch.randn(3, 3, 192, 64)
    mask = model.drop_mask(x)
    assert mask.shape == (3, 1, 12, 4)
    zero_rows = (mask[:, 0] == 0).all(2).sum(1)
    assert zero_rows.tolist() == [round(0.33 * 12)] * 3
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_eval_output_ignores_drop_randomness(tiny_batch):
    model = build_model("bdb", num_classes=5, backbone="resnet18").eval()
    with torch.no_grad():
        random.seed(0)
        a = model(tiny_batch)
        random.seed(1)
        assert torch.equal(a, model(tiny_batch))


def test_bad_names_and_options():
    with pytest.raises(RegistryError, match="top_db_nett.*Did you mean 'top_db_net'"):
        build_model("top_db_nett", num_classes=5)
    with pytest.raises(ConfigError, match="'bot' has no option.*drop_height_ratio"):
        build_model("bot", num_classes=5, backbone="resnet18", drop_height_ratio=0.5)
    with pytest.raises(ConfigError, match="num_classes.*0"):
        build_model("bot", num_classes=0, backbone="resnet18")
    with pytest.raises(RegistryError, match="backbone 'resnet5'"):
        build_model("bot", num_classes=5, backbone="resnet5")
    assert model_options("top_db_net")["top_drop_epoch"] == 0
    assert model_options("top_db_net")["row_score"] == "max"


@pytest.mark.parametrize("name", ["top_db_net", "top_db_net_no_reg", "top_db_net_no_drop", "bdb"])
def test_same_outputs_as_reference_restatement(name):
    """Reference weights (reidkit weights exported under reference names) in a re-statement of the reference
    forward give the same eval features and the same train-mode outputs, drop included."""
    torch.manual_seed(1)
    model = build_model(name, num_classes=6, backbone="resnet18")
    model.train()
    warm = torch.randn(4, 3, 128, 64)
    model(warm)  # non-trivial BN statistics
    reference = build_reference(name, 6, "resnet18", 512)
    missing, unexpected = reference.load_state_dict(to_reference_state_dict(model, prefix=""), strict=False)
    assert unexpected == []
    # the reference's no-reg model carries a BN it never uses
    dead = [f"bottleneck_drop_bottleneck_features.{s}" for s in ("weight", "bias", "running_mean", "running_var")]
    assert missing == (dead if name == "top_db_net_no_reg" else [])
    x = torch.randn(4, 3, 128, 64)
    model.eval(), reference.eval()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x, drop_top=True))
    model.train(), reference.train()
    drop_top = name != "bdb"
    random.seed(5)
    ours = model(x).as_tuple()
    random.seed(5)
    theirs = reference(x, drop_top=drop_top)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_top_db_net_before_top_drop_epoch_matches_reference_random_drop():
    torch.manual_seed(2)
    model = build_model("top_db_net", num_classes=6, backbone="resnet18", top_drop_epoch=10)
    reference = build_reference("top_db_net", 6, "resnet18", 512)
    reference.load_state_dict(to_reference_state_dict(model, prefix=""))
    x = torch.randn(4, 3, 128, 64)
    model.train(), reference.train()
    random.seed(11)
    ours = model(x).as_tuple()
    random.seed(11)
    theirs = reference(x, drop_top=False)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
