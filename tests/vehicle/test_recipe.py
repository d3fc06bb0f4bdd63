"""Pieces of the AICity training recipe (its balanced sampler: tests/data/test_samplers.py)."""
import pytest
import torch


def test_vehicle_transforms():
    from PIL import Image

    from reidkit.data.transforms import build_transforms
    import reidkit.data.vehicle  # noqa: F401  (registers the recipe)

    image = Image.new("RGB", (90, 50), (200, 10, 10))
    train = build_transforms(64, 64, train=True, recipe="vehicle")
    test = build_transforms(64, 64, train=False, recipe="vehicle")
    torch.manual_seed(0)
    assert train(image).shape == (3, 64, 64)
    out = test(image)
    assert out.shape == (3, 70, 70)  # round(1.1 x 64), no crop
    assert torch.equal(out, test(image))  # deterministic
    # pure red stays red after normalisation: (200/255 - 0.485) / 0.229
    assert out[0, 35, 35].item() == pytest.approx((200 / 255 - 0.485) / 0.229, abs=1e-3)


def test_loss_warmup_factor_matches_the_reference():
    from reidkit.losses.warmup import loss_warmup_factor

    # reference: w = 0.1; each warm-up iteration w = min(1, w + 0.9 / W) before scaling the loss
    w, expected = 0.1, []
    for _ in range(12):
        w = min(1.0, w + 0.9 / 10)
        expected.append(w)
    assert [loss_warmup_factor(k, 10) for k in range(12)] == pytest.approx(expected)
    assert loss_warmup_factor(5, 0) == 1.0


def test_loss_warmup_hook_scales_the_trainer_loss():
    from reidkit.engine.hooks import LossWarmupHook
    from reidkit.engine.trainer import HookBase, Trainer

    class Record(HookBase):
        def __init__(self):
            self.losses = []

        def after_step(self):
            self.losses.append(self.trainer.last_step.loss)

    model = torch.nn.Linear(2, 2)
    batches = [{"img": torch.ones(1, 2), "pid": torch.zeros(1, dtype=torch.long)}] * 3

    def unit_loss(output, pids):
        return output.sum() * 0 + 1.0, {}

    record = Record()
    trainer = Trainer(model, unit_loss, torch.optim.SGD(model.parameters(), lr=0.1), batches, epochs=2,
                      hooks=[LossWarmupHook(warmup_epochs=1), record])
    trainer.train()
    assert record.losses == pytest.approx([0.4, 0.7, 1.0, 1.0, 1.0, 1.0])


def test_backbone_lr_factor_makes_a_slower_backbone_group():
    from reidkit.config import OptimConfig, ScheduleConfig
    from reidkit.engine.optim import build_optimizer, build_scheduler
    from reidkit.errors import ConfigError
    from reidkit.models import build_model

    model = build_model("ft_net", 5, backbone="resnet18", pretrained=None, bottleneck=8)
    cfg = OptimConfig(name="sgd", lr=0.02, nesterov=True, backbone_lr_factor=0.1)
    opt = build_optimizer(model, cfg)
    head, base = opt.param_groups
    assert head["lr"] == pytest.approx(0.02) and base["lr"] == pytest.approx(0.002)
    assert {id(p) for p in base["params"]} == {id(p) for p in model.backbone.parameters()}
    assert len(head["params"]) + len(base["params"]) == len(list(model.parameters()))
    sched = build_scheduler(opt, ScheduleConfig(name="multistep", milestones=[1], gamma=0.1), epochs=2)
    opt.step()
    sched.step()  # the decay applies to both groups' own LR
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.002, 0.0002])
    assert len(build_optimizer(model, OptimConfig(name="sgd")).param_groups) == 1  # factor 1: one group
    with pytest.raises(ConfigError, match="no `backbone`"):
        build_optimizer(torch.nn.Linear(2, 2), cfg)


def test_vehicle_recipes_switch_the_recipe_on():
    from reidkit.config import load_config

    cfg = load_config("configs/vehicle/veri776_ft_net.yaml")
    assert cfg.optim.backbone_lr_factor == 0.1 and cfg.loss.warmup_epochs == 5
