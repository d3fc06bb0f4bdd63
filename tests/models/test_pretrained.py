"""model.pretrained the torchvision way: the weights enum, the torch hub cache ($TORCH_HOME), a download on first
use with its SHA-256 prefix checked, a hand-placed file verified, and one line naming the file and the offline
choices when the download cannot happen, said at config time. The URL opener is faked: no network."""
from __future__ import annotations

import email.message
import hashlib
import io
import re
import urllib.response
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision
from torchvision.models import MobileNet_V2_Weights, ResNet18_Weights, ResNet50_Weights

from reidkit.cli import main
from reidkit.config import load_config
from reidkit.engine.run_config import check_config
from reidkit.errors import CheckpointError
from reidkit.models import build_backbone
from reidkit.models.pretrained import OFFLINE_ENV, cached_weights_path, torchvision_weights

RECIPE = "configs/top_db_net/market1501.yaml"


@pytest.fixture(scope="module")
def weights_file() -> tuple[bytes, dict[str, torch.Tensor]]:
    """A torchvision-format resnet18 state dict (fc included), as bytes."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache; the URL opener fails the test unless a test replaces it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)

    def no_network(request, *args, **kwargs):
        raise AssertionError(f"the network was used: {request.full_url}")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def own_resnet18_url(weights_file, monkeypatch) -> str:
    """torchvision's resnet18 weights entry pointed at the test's file: its name carries that file's hash prefix."""
    digest = hashlib.sha256(weights_file[0]).hexdigest()
    url = f"https://download.pytorch.org/models/resnet18-{digest[:8]}.pth"
    monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1.value, "url", url)
    return url


def serve(monkeypatch, data: bytes) -> list[str]:
    """Fake torch.hub's URL opener with one file's bytes; returns the URLs asked for."""
    asked: list[str] = []

    def urlopen(request, *args, **kwargs):
        asked.append(request.full_url)
        headers = email.message.Message()
        headers["Content-Length"] = str(len(data))
        return urllib.response.addinfourl(io.BytesIO(data), headers, request.full_url, 200)

    monkeypatch.setattr(torch.hub, "urlopen", urlopen)
    return asked


def test_imagenet_is_torchvisions_weights_enum_and_cache_path(hub):
    assert torchvision_weights("resnet50", "imagenet") is ResNet50_Weights.IMAGENET1K_V1
    assert torchvision_weights("resnet50", "IMAGENET1K_V2") is ResNet50_Weights.IMAGENET1K_V2
    assert torchvision_weights("resnet50", "ResNet50_Weights.DEFAULT") is ResNet50_Weights.DEFAULT
    assert torchvision_weights("mobilenet_v2", "imagenet") is MobileNet_V2_Weights.IMAGENET1K_V1
    assert torchvision_weights("resnet50", "nope") is None and torchvision_weights("no_such_arch", "imagenet") is None
    assert cached_weights_path(ResNet50_Weights.IMAGENET1K_V1) == hub / "resnet50-0676ba61.pth"


def test_a_cached_file_is_used_without_the_network(hub, weights_file, own_resnet18_url):
    hub.mkdir(parents=True)
    (hub / Path(own_resnet18_url).name).write_bytes(weights_file[0])
    backbone = build_backbone("resnet18", pretrained="imagenet")
    assert torch.equal(backbone.layer4[1].conv2.weight, weights_file[1]["layer4.1.conv2.weight"])


def test_a_cached_file_whose_hash_does_not_match_its_name_is_refused(hub, weights_file):
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(weights_file[0])  # torchvision's name, another file
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd\.pth: its SHA-256 does not begin with f37072fd.*"
                                              r"delete it \(the next run downloads it again\)"):
        build_backbone("resnet18", pretrained="imagenet")


def test_first_use_downloads_once_into_the_hub_cache(hub, weights_file, own_resnet18_url, monkeypatch):
    asked = serve(monkeypatch, weights_file[0])
    backbone = build_backbone("resnet18", pretrained="IMAGENET1K_V1")
    assert asked == [own_resnet18_url]
    assert (hub / Path(own_resnet18_url).name).read_bytes() == weights_file[0]
    assert torch.equal(backbone.bn1.running_mean, weights_file[1]["bn1.running_mean"])
    build_backbone("resnet18", pretrained="imagenet")
    assert asked == [own_resnet18_url]  # cached: not downloaded again


def test_a_download_that_fails_its_checksum_keeps_nothing(hub, weights_file, monkeypatch):
    serve(monkeypatch, weights_file[0])  # not the file whose hash prefix f37072fd names
    with pytest.raises(CheckpointError, match=r"pretrained='imagenet' \(resnet18\): the download of "
                                              r"https://download\.pytorch\.org/models/resnet18-f37072fd\.pth does "
                                              "not match its checksum"):
        build_backbone("resnet18", pretrained="imagenet")
    assert list(hub.iterdir()) == []  # neither the file nor a partial one


def offline(monkeypatch) -> None:
    def unreachable(request, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "urlopen", unreachable)


def test_offline_train_says_which_file_to_put_where_before_the_data_is_read(hub, tmp_path, monkeypatch, capsys):
    offline(monkeypatch)
    missing = tmp_path / "no_data_here"
    assert main(["train", "--config", RECIPE, "--root", str(missing), "--output", str(tmp_path / "run"),
                 "train.device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error: model.pretrained=imagenet (resnet50): torchvision's weights could not "
                          "be downloaded ([Errno -2] Name or service not known); put "
                          f"https://download.pytorch.org/models/resnet50-0676ba61.pth at {hub}/resnet50-0676ba61.pth")
    assert err.count("\n") == 1 and "Traceback" not in err and "no_data_here" not in err  # before the data
    assert not (tmp_path / "run").exists()
    for choice in ("model.pretrained=<path to a torchvision-format state dict>",
                   "model.backbone=mobilenet_v2 model.pretrained=deepsort", "model.pretrained=null"):
        assert choice in err


def test_the_offline_choices_named_are_accepted_by_the_config(hub, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(CheckpointError) as info:
        check_config(load_config(RECIPE), backbone_weights=True)
    for choice in ("model.backbone=mobilenet_v2 model.pretrained=deepsort", "model.pretrained=null"):
        assert choice in str(info.value)
        check_config(load_config(RECIPE, choice.split()), backbone_weights=True)  # offline, no error


def test_reidkit_offline_fails_at_once_and_python_keys_read_as_python(hub, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")  # the URL opener of `hub` fails the test if it is called
    with pytest.raises(CheckpointError) as info:
        build_backbone("resnet50", pretrained="imagenet")
    message = str(info.value)
    assert f"not in the cache and {OFFLINE_ENV} is set; put " in message
    assert str(hub / "resnet50-0676ba61.pth") in message and "\n" not in message
    assert "backbone='mobilenet_v2' pretrained='deepsort'" in message and "pretrained=None" in message


def test_only_runs_that_load_the_backbone_weights_check_them(hub, monkeypatch):
    offline(monkeypatch)
    check_config(load_config(RECIPE))  # test, extract and resume replace the backbone weights: no download
    with pytest.raises(CheckpointError, match=re.escape("model.pretrained=nope.pth: no such file")):
        check_config(load_config(RECIPE, ["model.pretrained=nope.pth"]), backbone_weights=True)
