"""ASTA + AITL through the engine's Trainer (which hands the criterion the batch's attribute targets) on a
tiny MARS replica, in full and in mixed (bf16) precision."""
from __future__ import annotations

import pytest
import torch

from reidkit.config import OptimConfig
from reidkit.data.base import build_dataset
from reidkit.data.video import build_video_train_loader
from reidkit.engine.optim import build_optimizer
from reidkit.engine.trainer import Trainer
from reidkit.losses.aitl import AITLCriterion
from reidkit.models import build_model

from .replicas import make_mars


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_trainer_steps_on_video_clips(tmp_path, amp):
    torch.manual_seed(0)
    make_mars(tmp_path)
    data = build_dataset("mars", root=tmp_path)
    model = build_model("asta", data.num_train_pids, backbone="resnet18", frame_size=(64, 32),
                        attribute_dims=data.attribute_schema.group_dims)
    loader = build_video_train_loader(data, height=64, width=32, batch_size=4, num_instances=2, seq_len=4)
    criterion = AITLCriterion(model, include_self=True)  # the Trainer passes it the batch's "attributes"
    before = model.attributes["relevant"].classifier.weight.detach().clone()
    trainer = Trainer(model, criterion, build_optimizer(model, OptimConfig(lr=1e-3)), loader,
                      epochs=1, amp=amp)
    trainer.train()
    step = trainer.last_step
    assert step.images == 4 and torch.isfinite(torch.tensor(step.loss))
    assert set(step.parts) == {"global/triplet", "global/ce", "attr_irrelevant/aitl", "attr_relevant/aitl",
                               "attributes/bce"}
    assert not torch.equal(before, model.attributes["relevant"].classifier.weight)  # the attribute head learns
