import math

import pytest
import torch

from reidkit.config import OptimConfig, ScheduleConfig
from reidkit.engine.optim import build_optimizer, build_scheduler, schedule_factor
from reidkit.errors import ConfigError


def spec_warmup_db(ep: int) -> float:
    """docs/specs/top-db-net.md section 7, ep = epoch index + 1."""
    if ep < 50:
        return 1e-4 * (ep // 5 + 1) / 2
    return 5e-4 if ep < 200 else 5e-5 if ep < 300 else 5e-6


def lrs(name: str, lr: float, epochs: int, **schedule) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([param], OptimConfig(lr=lr))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name=name, **schedule), epochs)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_db_is_the_spec_schedule():
    got = lrs("warmup_db", 5e-4, 400)
    for index, value in enumerate(got):
        assert math.isclose(value, spec_warmup_db(index + 1), rel_tol=1e-9), index
    assert got[0] == pytest.approx(5e-5) and got[48] == pytest.approx(5e-4) and got[399] == pytest.approx(5e-6)


def test_bdb_schedule_is_warmup_db_without_the_half():
    got = lrs("bdb", 1e-3, 400)
    for index, value in enumerate(got):
        assert math.isclose(value, 2 * spec_warmup_db(index + 1), rel_tol=1e-9), index


def test_multistep_with_linear_warmup():
    got = lrs("multistep", 0.1, 8, milestones=[4, 6], gamma=0.1, warmup_epochs=2, warmup_factor=0.1)
    assert got == pytest.approx([0.01, 0.055, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_with_warmup_reaches_the_floor():
    got = lrs("cosine", 1.0, 6, warmup_epochs=1, warmup_factor=0.5, min_lr_factor=0.1)
    assert got[0] == pytest.approx(0.5) and got[1] == pytest.approx(1.0) and got[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(got[1:], got[2:]))


def test_scheduler_state_round_trip():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([param], OptimConfig(lr=5e-4))
    scheduler = build_scheduler(optimizer, ScheduleConfig(), 400)
    for _ in range(60):
        optimizer.step()
        scheduler.step()
    fresh = build_scheduler(build_optimizer([param], OptimConfig(lr=5e-4)), ScheduleConfig(), 400)
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.last_epoch == 60 and fresh.get_last_lr() == scheduler.get_last_lr()


@pytest.mark.parametrize(
    "name, cls, extra",
    [("adam", torch.optim.Adam, {"betas": (0.9, 0.999)}), ("adamw", torch.optim.AdamW, {"betas": (0.5, 0.9)}),
     ("sgd", torch.optim.SGD, {"momentum": 0.8, "nesterov": True})],
)
def test_optimizers(name, cls, extra):
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    cfg = OptimConfig(name=name, lr=0.01, weight_decay=1e-4, betas=list(extra.get("betas", (0.9, 0.999))),
                      momentum=extra.get("momentum", 0.9), nesterov=extra.get("nesterov", False))
    optimizer = build_optimizer(model, cfg)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["params"] == [model.weight]  # frozen parameters are left out
    assert group["weight_decay"] == 1e-4 and group["lr"] == 0.01
    for key, value in extra.items():
        assert group[key] == value


def test_bad_schedule_settings():
    with pytest.raises(ConfigError, match=r"schedule.milestones=\[50, 200\]"):
        schedule_factor(ScheduleConfig(name="warmup_db", milestones=[50, 200]), 400)
    with pytest.raises(ConfigError, match="increasing"):
        schedule_factor(ScheduleConfig(name="multistep", milestones=[30, 20]), 400)
    with pytest.raises(ConfigError, match="betas"):
        build_optimizer(torch.nn.Linear(1, 1), OptimConfig(betas=[0.9]))
