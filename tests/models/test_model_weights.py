"""load_weights: reference-layout checkpoints (from the reference TSV), reidkit round trips, bare state dicts,
classifiers trained on other identities, and the errors for everything else."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import reidkit
from reidkit.errors import CheckpointError
from reidkit.models import build_model, load_weights, save_weights, to_reference_state_dict
from reference_layout import VARIANTS, random_reference_state

# (reference key, how to reach the same tensor in the reidkit model): written out by hand, independent of
# the translation table.
SPOT_CHECKS = {
    "top-db-net": {
        "base.0.weight": lambda m: m.backbone.conv1.weight,
        "base.1.running_mean": lambda m: m.backbone.bn1.running_mean,
        "base.7.0.downsample.0.weight": lambda m: m.backbone.layer4[0].downsample[0].weight,
        "base.7.2.bn3.bias": lambda m: m.backbone.layer4[2].bn3.bias,
        "base.5.3.conv2.weight": lambda m: m.backbone.layer2[3].conv2.weight,
        "batch_drop.drop_batch_bottleneck.1.conv2.weight": lambda m: m.bottleneck[1].conv2.weight,
        "reduction_global.0.bias": lambda m: m.global_reduction[0].bias,
        "bottleneck_global.running_var": lambda m: m.global_neck.running_var,
        "reduction_db.0.weight": lambda m: m.drop_reduction[0].weight,
        "bottleneck_db.weight": lambda m: m.drop_neck.weight,
        "classifier_db.bias": lambda m: m.drop_classifier.bias,
        "bottleneck_drop_bottleneck_features.running_mean": lambda m: m.reg_neck.running_mean,
        "classifier_drop_bottleneck.weight": lambda m: m.reg_classifier.weight,
    },
    "top-db-net-no-reg": {
        "batch_drop.drop_batch_bottleneck.0.bn3.weight": lambda m: m.bottleneck[0].bn3.weight,
        "classifier_global.weight": lambda m: m.global_classifier.weight,
    },
    "top-db-net-no-drop": {
        "reduction_regularization.0.conv1.weight": lambda m: m.bottleneck[0].conv1.weight,
        "bottleneck_regularization.bias": lambda m: m.reg_neck.bias,
        "classifier_regularization.weight": lambda m: m.reg_classifier.weight,
        "base.6.5.bn2.running_var": lambda m: m.backbone.layer3[5].bn2.running_var,
    },
    "bdb-baseline": {
        "batch_drop.drop_batch_bottleneck.conv3.weight": lambda m: m.bottleneck.conv3.weight,
        "reduction_db.1.running_mean": lambda m: m.drop_reduction[1].running_mean,
        "reduction_global.1.weight": lambda m: m.global_reduction[1].weight,
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_reference_layout_checkpoint_from_tsv_loads_completely(variant, tmp_path):
    state = random_reference_state(variant)
    model = build_model(VARIANTS[variant], num_classes=751)
    checkpoint = {"state_dict": state, "epoch": 400, "rank1": np.float64(0.949), "optimizer": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no skipped entries, no full unpickling
        if variant == "top-db-net":  # one trip through a file, as the reference saves it
            torch.save(checkpoint, tmp_path / "model.pth.tar-400")
            report = reidkit.load_weights(model, tmp_path / "model.pth.tar-400")
        else:
            report = load_weights(model, checkpoint)
    assert report.format == "reference" and report.skipped == []
    assert sorted(report.loaded) == sorted(model.state_dict())
    dead = sorted(k for k in state if "bottleneck_drop_bottleneck_features" in k)
    assert sorted("module." + k for k in report.ignored) == (dead if variant == "top-db-net-no-reg" else [])
    for key, reach in SPOT_CHECKS[variant].items():
        assert torch.equal(reach(model), state["module." + key]), key
    # and every entry lands where the translation table says
    for key, value in to_reference_state_dict(model).items():
        assert torch.equal(value, state[key]), key


def test_classifier_trained_on_other_identities_is_skipped_with_warning():
    source = build_model("top_db_net", num_classes=9, backbone="resnet18")
    target = build_model("top_db_net", num_classes=4, backbone="resnet18")
    before = target.global_classifier.weight.clone()
    expected = r"skipped classifier entries.*global_classifier\.weight \(9, 512\) vs model \(4, 512\)"
    with pytest.warns(UserWarning, match=expected):
        report = load_weights(target, source.state_dict())
    assert len(report.skipped) == 6  # weight and bias of the three classifiers
    assert all(k.split(".")[0].endswith("classifier") for k in report.skipped)
    assert torch.equal(target.global_classifier.weight, before)
    assert torch.equal(target.bottleneck[1].conv3.weight, source.bottleneck[1].conv3.weight)


def test_reference_checkpoint_with_other_identities_skips_reference_classifiers():
    state = random_reference_state("bdb-baseline")
    model = build_model("bdb", num_classes=10)
    with pytest.warns(UserWarning, match="classifier_global.weight"):
        report = load_weights(model, {"state_dict": state})
    assert sorted(s.split()[0] for s in report.skipped) == sorted(
        ["classifier_db.bias", "classifier_db.weight", "classifier_global.bias", "classifier_global.weight"]
    )


def test_round_trip_through_reidkit_checkpoint(tmp_path, tiny_batch):
    torch.manual_seed(0)
    model = build_model("top_db_net", num_classes=5, backbone="resnet18")
    model.train()
    model(tiny_batch)
    save_weights(model, tmp_path / "ckpt.pth", epoch=3)
    saved = torch.load(tmp_path / "ckpt.pth", weights_only=True)
    assert saved["format"] == "reidkit" and saved["model_name"] == "top_db_net" and saved["num_classes"] == 5
    torch.manual_seed(1)
    fresh = build_model("top_db_net", num_classes=5, backbone="resnet18")
    report = load_weights(fresh, tmp_path / "ckpt.pth")
    assert report.format == "reidkit" and not report.skipped
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(tiny_batch), fresh(tiny_batch))


def test_bare_state_dict_file_and_module_prefix(tmp_path):
    model = build_model("bot", num_classes=3, backbone="resnet18")
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    fresh = build_model("bot", num_classes=3, backbone="resnet18")
    report = load_weights(fresh, tmp_path / "bare.pt")
    assert report.format == "state_dict"
    assert torch.equal(fresh.classifier.weight, model.classifier.weight)


def test_unknown_key_is_an_error_naming_it():
    state = random_reference_state("bdb-baseline")
    state["module.classifier_extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"unexpected entries not in BDBNet.*classifier_extra\.weight"):
        load_weights(build_model("bdb", num_classes=751), {"state_dict": state})


def test_wrong_model_is_an_error_naming_keys():
    state = random_reference_state("top-db-net-no-drop")
    with pytest.raises(CheckpointError, match=r"unexpected entries not in TopDBNet.*reduction_regularization"):
        load_weights(build_model("top_db_net", num_classes=751), {"state_dict": state})
    state = random_reference_state("top-db-net")
    del state["module.reduction_db.1.running_var"]
    with pytest.raises(CheckpointError, match=r"entries missing for TopDBNet: drop_reduction\.1\.running_var"):
        load_weights(build_model("top_db_net", num_classes=751), {"state_dict": state})


def test_wrong_shape_outside_classifiers_is_an_error():
    narrow = build_model("top_db_net", num_classes=3, backbone="resnet18", global_dim=256)
    expected = r"wrong shape.*global_reduction\.0\.weight \(256, 512, 1, 1\) vs model \(512, 512, 1, 1\)"
    with pytest.raises(CheckpointError, match=expected):
        load_weights(build_model("top_db_net", num_classes=3, backbone="resnet18"), narrow.state_dict())


def test_other_backbone_checkpoint_error_says_so(tmp_path):
    save_weights(build_model("bot", num_classes=3, backbone="resnet18"), tmp_path / "r18.pth")
    expected = (
        r"missing for BoT \(the checkpoint is a 'bot' model on resnet18, this model is a 'bot' model on resnet34\)"
    )
    with pytest.raises(CheckpointError, match=expected):
        load_weights(build_model("bot", num_classes=3, backbone="resnet34"), tmp_path / "r18.pth")


def test_trained_checkpoint_of_another_backbone_says_so(tmp_path):
    # The trainer's checkpoints (save_checkpoint) carry the same header as save_weights, backbone included.
    from reidkit.engine.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "last.pth", build_model("bot", num_classes=3, backbone="resnet18"), epoch=1)
    expected = r"\(the checkpoint is a 'bot' model on resnet18, this model is a 'bot' model on resnet34\)"
    with pytest.raises(CheckpointError, match=expected):
        load_weights(build_model("bot", num_classes=3, backbone="resnet34"), tmp_path / "last.pth")


def test_unreadable_and_missing_files_name_the_path(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    model = build_model("bot", num_classes=3, backbone="resnet18")
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable torch checkpoint"):
        load_weights(model, garbage)
    with pytest.raises(CheckpointError, match="checkpoint file not found: .*absent.pth"):
        load_weights(model, tmp_path / "absent.pth")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"odd.pth: expected a reidkit checkpoint .* got \['epoch', 'note'\]"):
        load_weights(model, tmp_path / "odd.pth")
