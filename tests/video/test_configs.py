"""The video recipes load through the shared config and match docs/specs/video-aitl-asta.md section 5 and the datasets'
schemas."""
from __future__ import annotations

import pytest

import reidkit.data.video  # noqa: F401  (registers the video datasets and the "asta" transform recipe)
import reidkit.models.asta  # noqa: F401
from reidkit.config import load_config
from reidkit.data.video import DUKEV_ATTRIBUTES, MARS_ATTRIBUTES
from reidkit.engine.launch import check_config


@pytest.mark.parametrize("recipe, dataset, schema", [
    ("configs/video/asta_aitl_mars.yaml", "mars", MARS_ATTRIBUTES),
    ("configs/video/asta_aitl_dukev.yaml", "dukemtmcvidreid", DUKEV_ATTRIBUTES),
    ("configs/video/asta_aitl_synthetic.yaml", "synthetic_video", MARS_ATTRIBUTES),
])
def test_recipe(recipe, dataset, schema):
    cfg = load_config(recipe, ["data.root=DATA"])
    check_config(cfg)  # dataset, recipe, model and its options exist
    assert cfg.data.name == dataset and cfg.model.name == "asta" and cfg.data.recipe == "asta"
    assert cfg.model.options["attribute_dims"] == schema.group_dims
    assert cfg.model.options["frame_size"] == [cfg.data.height, cfg.data.width]
    assert (cfg.loss.metric, cfg.loss.margin, cfg.loss.label_smooth) == ("cosine", 0.3, 0.1)
    assert cfg.test.metric == "cosine"
    if dataset != "synthetic_video":  # the published recipe (docs/specs/video-aitl-asta.md section 5)
        assert (cfg.data.height, cfg.data.width, cfg.model.backbone) == (256, 128, "resnet50")
        assert cfg.train.batch_size // cfg.data.num_instances == 8 and cfg.data.num_instances == 4
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 3.5e-4, 5e-4)
        assert cfg.schedule.milestones == [70, 140, 210, 310, 410] and cfg.schedule.gamma == 0.3
        assert (cfg.schedule.warmup_epochs, cfg.schedule.warmup_factor) == (10, 0.01)
        assert (cfg.train.epochs, cfg.test.eval_period, cfg.train.amp) == (500, 40, "fp16")


@pytest.mark.parametrize("recipe", ["configs/video/asta_aitl_mars.yaml", "configs/video/asta_aitl_dukev.yaml",
                                    "configs/video/asta_aitl_synthetic.yaml"])
def test_recipes_reproduce_the_released_code(recipe):
    """docs/fidelity.md, video rows: the reference's frame shuffle, per-frame augmentation, identity-once epochs and
    AITL with the anchor among its candidates; its ResNet stem without ReLU (ResNet recipes)."""
    cfg = load_config(recipe, ["data.root=DATA"])
    assert (cfg.data.frame_order, cfg.data.per_frame, cfg.data.sampler) == ("shuffled", True, "identity_once")
    assert cfg.loss.include_self is True
    resnet = cfg.model.backbone.startswith("resnet")
    assert cfg.model.options.get("stem_relu", True) is (not resnet)
    assert "gallery" not in cfg.data.options  # DukeV: the standard gallery unless data.options.gallery=reference
