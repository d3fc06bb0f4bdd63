"""`reidkit extract` with flip + multi-scale TTA and the fusion of several models, on a tiny VeRi replica."""
import numpy as np
import pytest
import torch

from reidkit.cli import main as reidkit_main
from reidkit.config import load_config
from reidkit.engine.checkpoint import save_checkpoint
from reidkit.models import build_model
from reidkit.features.files import load_features
from tests.vehicle.conftest import make_veri

OVERRIDES = ["model.backbone=resnet18", "model.pretrained=null", "data.height=16", "data.width=16",
             "data.workers=0", "output.progress=false", "test.batch_size=4", "model.options.bottleneck=8"]


def checkpoint(path, seed, cfg):
    torch.manual_seed(seed)
    model = build_model("ft_net", 3, backbone="resnet18", pretrained=None, bottleneck=8)
    return save_checkpoint(path, model, epoch=1, config=cfg.to_dict())


@pytest.fixture
def setup(tmp_path):
    make_veri(tmp_path)
    cfg = load_config("configs/vehicle/veri776_ft_net.yaml", [f"data.root={tmp_path}", *OVERRIDES])
    return tmp_path, checkpoint(tmp_path / "a.pth", 0, cfg), checkpoint(tmp_path / "b.pth", 1, cfg)


def extract(*args):
    assert reidkit_main(["extract", *map(str, args)]) == 0


def test_dataset_features_for_postprocess_with_tta_and_fusion(setup):
    root, a, b = setup
    extract("--weights", a, "--output", root / "a.mat", "--scales", "1", "0.5", "--flip")
    extract("--weights", a, "--weights", b, "--output", root / "ab.mat", "--scales", "1", "0.5", "--flip")
    single, fused = load_features(root / "a.mat"), load_features(root / "ab.mat")
    assert single["query_f"].shape == (2, 8) and fused["gallery_f"].shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(fused["gallery_f"], axis=1), 1.0, atol=1e-5)
    # model a's half of the fusion is its own TTA feature / sqrt(2)
    np.testing.assert_allclose(fused["query_f"][:, :8] * 2 ** 0.5, single["query_f"], atol=1e-5)
    assert fused["gallery_name"][0] == "0005_c001_00077000_0.jpg"  # name_test.txt order
    assert fused["query_label"].tolist() == [2, 5] and fused["gallery_cam"].tolist() == [0, 0, 0, 1, 2]
    extract("--weights", a, "--output", root / "a1.mat", "--scales", "1", "--no-flip")
    assert not np.allclose(load_features(root / "a1.mat")["query_f"], single["query_f"], atol=1e-3)


def test_folder_features_keep_their_plain_form_without_tta(setup):
    root, a, b = setup
    images = root / "VeRi" / "image_query"
    extract("--weights", a, "--images", images, "--output", root / "plain.npz", "--no-flip")
    extract("--weights", a, "--weights", b, "--images", images, "--output", root / "fused.npz", "--scales", "1")
    with np.load(root / "plain.npz") as plain, np.load(root / "fused.npz") as fused:
        assert plain["features"].shape == (2, 8) and fused["features"].shape == (2, 16)
        assert not np.allclose(np.linalg.norm(plain["features"], axis=1), 1.0)  # the model's raw BN feature
        np.testing.assert_allclose(np.linalg.norm(fused["features"], axis=1), 1.0, atol=1e-5)
        assert plain["paths"].tolist() == ["0002_c002_00030600_0.jpg", "0005_c003_00077350_0.jpg"]


def test_extract_errors(setup, capsys):
    root, a, _ = setup
    assert reidkit_main(["extract", "--weights", str(a), "--output", str(root / "f.pt")]) == 2
    assert "ends in .mat or .npz" in capsys.readouterr().err
    assert reidkit_main(["extract", "--weights", str(a), "--output", str(root / "f.mat"), "--scales", "0"]) == 2
    assert "--scales [0.0]: expected positive" in capsys.readouterr().err


def test_explicit_overrides_win_over_the_flags(setup):
    """As in every other command, key=value wins over --root / --device (they are applied first)."""
    root, a, _ = setup
    extract("--weights", a, "--root", root / "missing", f"data.root={root}", "--device", "cuda:7",
            "train.device=cpu", "--output", root / "f.mat")
    assert load_features(root / "f.mat")["query_f"].shape == (2, 8)


def test_each_checkpoint_is_read_once(setup, monkeypatch):
    import reidkit.models.weights as weights_module

    root, a, b = setup
    reads = []
    real = weights_module.torch_load
    monkeypatch.setattr(weights_module, "torch_load", lambda path, **kw: reads.append(str(path)) or real(path, **kw))
    extract("--weights", a, "--weights", b, "--output", root / "ab.mat")
    assert sorted(reads) == sorted([str(a), str(b)])
