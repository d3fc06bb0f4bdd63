import json
import signal

import pytest
import torch

from reidkit.config import OptimConfig, ScheduleConfig
from reidkit.engine.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from reidkit.engine.hooks import CheckpointHook, EvalHook, FixBaseHook, LoggerHook, LRSchedulerHook
from reidkit.engine.optim import build_optimizer, build_scheduler
from reidkit.engine.trainer import HookBase, Trainer, TrainingInterrupted
from reidkit.errors import ConfigError
from reidkit.losses import build_criterion

from engine_helpers import TinyReid, make_loader


def build_trainer(run_dir, epochs, *, extra_hooks=(), optim="adam", fixbase_epochs=0, **kwargs) -> Trainer:
    seed_everything(0)
    model = TinyReid()
    optimizer = build_optimizer(model, OptimConfig(name=optim, lr=0.01))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="cosine", warmup_epochs=1), 3)
    fixbase = [FixBaseHook(model, fixbase_epochs)] if fixbase_epochs else []
    hooks = [*fixbase, LRSchedulerHook(scheduler), *extra_hooks, CheckpointHook(run_dir / "checkpoints", period=1)]
    return Trainer(model, build_criterion(model), optimizer, make_loader(), epochs=epochs, scheduler=scheduler,
                   hooks=hooks, **kwargs)


def weights(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ: {different}"


class SignalAt(HookBase):
    """Sends `signum` to this process after step `iteration` of epoch index `epoch` (as Ctrl-C / kill would)."""

    def __init__(self, epoch: int, iteration: int, signum: int = signal.SIGINT) -> None:
        self.epoch, self.iteration, self.signum = epoch, iteration, signum

    def after_step(self) -> None:
        if (self.trainer.epoch, self.trainer.iter) == (self.epoch, self.iteration):
            signal.raise_signal(self.signum)


def test_two_epochs_equal_one_plus_resume_one(tmp_path):
    straight = build_trainer(tmp_path / "a", 2)
    straight.train()
    first = build_trainer(tmp_path / "b", 1)
    first.train()
    after_one = weights(first)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pth", for_resume=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 0
    resumed = build_trainer(tmp_path / "b", 2)
    resumed.resume(ckpt)
    resumed.train()
    assert_same(weights(straight), weights(resumed))
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    # The second epoch did train: the comparison is not between untouched weights.
    assert any(not torch.equal(after_one[k], v) for k, v in weights(resumed).items())
    assert resumed.module.epochs_seen == [1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_saves_checkpoint_and_resume_is_exact(tmp_path, signum):
    straight = build_trainer(tmp_path / "a", 2)
    straight.train()
    assert straight.num_batches >= 2
    interrupted = build_trainer(tmp_path / "b", 2, extra_hooks=[SignalAt(1, 1, signum)])
    with pytest.raises(TrainingInterrupted) as info:
        interrupted.train()
    assert info.value.signum == signum
    assert info.value.checkpoint == tmp_path / "b" / "checkpoints" / "last.pth"
    # The handler is removed again after training.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ckpt = load_checkpoint(info.value.checkpoint, for_resume=True)
    assert (ckpt["epoch"], ckpt["iteration"]) == (1, 1)
    resumed = build_trainer(tmp_path / "b", 2)
    resumed.resume(ckpt)
    resumed.train()
    assert_same(weights(straight), weights(resumed))


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, tiny_model):
    path = tmp_path / "last.pth"
    save_checkpoint(path, tiny_model, epoch=1)
    before = path.read_bytes()

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_model, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_periodic_checkpoints_and_history(tmp_path):
    lines = []
    calls = []
    evaluate = EvalHook(lambda model: calls.append(type(model).__name__) or {"mAP": 0.5, "Rank-1": 0.75}, period=2)
    logger = LoggerHook(tmp_path, tensorboard=True, progress=False, print_fn=lines.append)
    trainer = build_trainer(tmp_path, 3, extra_hooks=[evaluate, logger])
    trainer.hooks[-1].period = 2
    trainer.train()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_002.pth", "epoch_003.pth", "last.pth"]
    assert calls == ["TinyReid", "TinyReid"]  # epochs 2 and 3 (the last), the unwrapped model
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert "mAP" not in records[0] and records[1]["mAP"] == 0.5
    assert all(r["loss"] > 0 and r["images_per_sec"] > 0 and "loss/global/ce" in r for r in records)
    assert len(lines) == 3 and lines[1].startswith("epoch 2/3") and "mAP 50.0%" in lines[1]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert load_checkpoint(tmp_path / "checkpoints" / "epoch_002.pth")["metrics"]["mAP"] == 0.5


def test_gradient_accumulation_matches_large_batch(tmp_path):
    torch.manual_seed(0)
    x, pids = torch.randn(8, 3, 16, 8), torch.arange(8) % 4

    def run(batches, steps):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 8, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        criterion = lambda out, y: (torch.nn.functional.cross_entropy(out, y), {})  # noqa: E731
        trainer = Trainer(model, criterion, opt, batches, epochs=1, accumulate_steps=steps)
        trainer.train()
        return trainer, model[1].weight.detach().clone()

    halves = [{"img": x[:4], "pid": pids[:4]}, {"img": x[4:], "pid": pids[4:]}]
    accumulated, w_acc = run(halves, 2)
    single, w_one = run([{"img": x, "pid": pids}], 1)
    assert accumulated.global_step == single.global_step == 1
    assert torch.allclose(w_acc, w_one, atol=1e-6)
    unaccumulated, w_two = run(halves, 1)
    assert unaccumulated.global_step == 2 and not torch.allclose(w_two, w_one, atol=1e-6)


def test_fixbase_epochs_train_only_new_layers(tmp_path):
    trainer = build_trainer(tmp_path, 1, fixbase_epochs=1)
    frozen_bn = trainer.module.neck.bias
    frozen_bn.requires_grad_(False)  # like BoT's neck bias: must stay frozen afterwards
    before = weights(trainer)
    trainer.train()
    after = weights(trainer)
    backbone = [k for k in before if k.startswith("backbone.")]
    assert all(torch.equal(before[k], after[k]) for k in backbone)  # incl. BN running statistics
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    trainer.epochs = 2
    trainer.start_epoch = 1
    trainer.train()
    assert not torch.equal(after["backbone.0.weight"], trainer.module.backbone[0].weight)
    assert not frozen_bn.requires_grad and torch.equal(before["neck.bias"], trainer.module.neck.bias.detach())


def test_fixbase_without_a_backbone_is_refused_before_training():
    with pytest.raises(ConfigError, match=r"train.fixbase_epochs=2: the model Linear has no `backbone`"):
        FixBaseHook(torch.nn.Linear(2, 2), 2)


def test_bf16_autocast_and_channels_last_on_cpu(tmp_path):
    trainer = build_trainer(tmp_path, 1, amp="bf16", channels_last=True)
    trainer.module.to(memory_format=torch.channels_last)
    trainer.train()
    assert torch.isfinite(torch.tensor(trainer.last_step.loss))
    assert trainer.module.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        build_trainer(tmp_path, 1, amp="fp16")


def test_resume_refuses_fewer_epochs(tmp_path):
    trainer = build_trainer(tmp_path, 2)
    trainer.train()
    again = build_trainer(tmp_path, 1)
    with pytest.raises(ConfigError, match="raise train.epochs"):
        again.resume(load_checkpoint(tmp_path / "checkpoints" / "last.pth", for_resume=True))
