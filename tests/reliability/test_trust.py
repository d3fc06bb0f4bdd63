"""Issue 13, classes 1 and 5 as a user meets them: no code runs from a checkpoint unless --trust-checkpoint /
trust_checkpoint=True; each checkpoint is read once; load errors name the file; atomic writes leave no
temporary files and honour the umask; TensorBoard keeps per-step and per-epoch points apart."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import reidkit
from reidkit.cli import main
from reidkit.engine.checkpoint import load_checkpoint
from reidkit.errors import CheckpointError
from reidkit.models import build_model
from reidkit.models.weights import _numpy_safe_globals, load_weights, torch_load, trusting_checkpoints
from reidkit.utils import io as atomic_io

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from cli_helpers import write_tiny_config  # noqa: E402
from reference_layout import random_reference_state  # noqa: E402

MARKER_NAME = "CODE_RAN"


class Payload:
    """Unpickling this runs code: it creates the marker file (what a hostile checkpoint would do worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def reidkit_cli(*args: str, cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    """`python -m reidkit ARGS` as a user runs it (optionally under `umask`)."""
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "reidkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, preexec_fn=preexec)


def only_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a refused command prints (exit code 2, no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("reidkit: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny training run (under umask 022), and hostile and odd checkpoints made from it."""
    folder = tmp_path_factory.mktemp("trust")
    write_tiny_config(folder, optim={"name": "sgd", "lr": 1e-3},
                      schedule={"name": "multistep", "milestones": [1], "warmup_epochs": 1},
                      train={"log_period": 1})
    result = reidkit_cli("train", "--config", "tiny.yaml", cwd=folder, umask=0o022)
    assert result.returncode == 0, result.stderr
    last = torch.load(folder / "run" / "checkpoints" / "last.pth", weights_only=True)
    marker = folder / MARKER_NAME
    torch.save({**last, "hook": Payload(marker)}, folder / "evil.pth")
    backbone = build_model("top_db_net", num_classes=3, backbone="resnet18").backbone.state_dict()
    torch.save({**backbone, "hook": Payload(marker)}, folder / "evil_backbone.pth")
    torch.save({**last, "args": argparse.Namespace(lr=1e-3)}, folder / "with_args.pth")
    # The payload is live: full unpickling runs it (so the tests below can tell that nothing unpickled it).
    torch.load(folder / "evil.pth", weights_only=False)
    assert marker.is_file()
    marker.unlink()
    return folder


def assert_refused(result: subprocess.CompletedProcess, file: Path, global_name: str) -> None:
    line = only_error_line(result)
    assert str(file) in line and global_name in line and "--trust-checkpoint" in line, line
    assert not (file.parent / MARKER_NAME).exists(), "the checkpoint's code ran"


# ------------------------------------------------------------------------------------- no code from files


@pytest.mark.parametrize("command", [
    ["test", "--weights", "{evil}"],
    ["test", "--config", "tiny.yaml", "--weights", "{evil}"],
    ["extract", "--weights", "{evil}", "--images", "{images}", "--output", "{out}/f.npz"],
    ["train", "--resume", "{evil}"],
    ["train", "--config", "tiny.yaml", "--output", "{out}/fine_tune", "model.weights={evil}"],
], ids=["test", "test-config", "extract", "resume", "model.weights"])
def test_crafted_checkpoint_does_not_run(run, tmp_path, command):
    evil = run / "evil.pth"
    images = run / "data" / "Market-1501-v15.09.15" / "query"
    argv = [a.format(evil=evil, images=images, out=tmp_path) for a in command]
    assert_refused(reidkit_cli(*argv, cwd=run), evil, "builtins.exec")
    assert not (tmp_path / "f.npz").exists()


def test_crafted_pretrained_backbone_does_not_run(run, tmp_path):
    evil = run / "evil_backbone.pth"
    result = reidkit_cli("train", "--config", "tiny.yaml", "--output", str(tmp_path / "new"),
                         f"model.pretrained={evil}", cwd=run)
    assert_refused(result, evil, "builtins.exec")


def test_load_weights_refuses_crafted_checkpoint(run):
    model = build_model("top_db_net", num_classes=8, backbone="resnet18")
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused to load.*builtins\.exec.*trust_checkpoint=True"):
        reidkit.load_weights(model, run / "evil.pth")
    with pytest.raises(CheckpointError, match="builtins.exec"):
        load_checkpoint(run / "evil.pth", for_resume=True)
    assert not (run / MARKER_NAME).exists()


def test_opt_in_loads_a_checkpoint_with_python_objects(run, tmp_path):
    odd = run / "with_args.pth"
    assert_refused(reidkit_cli("test", "--weights", str(odd), cwd=run), odd, "argparse.Namespace")
    result = reidkit_cli("test", "--weights", str(odd), "--trust-checkpoint", "--no-rerank",
                         "--output", str(tmp_path / "tested"), cwd=run)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tested" / "test" / "results.json").is_file()
    result = reidkit_cli("extract", "--weights", str(odd), "--trust-checkpoint", "--images",
                         str(run / "data" / "Market-1501-v15.09.15" / "query"), "--output", str(tmp_path / "f.npz"),
                         cwd=run)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "f.npz")["features"].shape[0] > 0


def test_opt_in_in_the_api(run):
    model = build_model("top_db_net", num_classes=8, backbone="resnet18")
    report = load_weights(model, run / "with_args.pth", trust_checkpoint=True)
    assert report.format == "reidkit" and report.source == str(run / "with_args.pth")
    with trusting_checkpoints():
        assert isinstance(torch_load(run / "with_args.pth")["args"], argparse.Namespace)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        torch_load(run / "with_args.pth")  # the opt-in ended with the block


def test_reidkit_training_checkpoints_are_tensors_only(run):
    for name in ("last.pth", "epoch_001.pth"):
        path = run / "run" / "checkpoints" / name
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], name
        ckpt = load_checkpoint(path, for_resume=True)
        assert {"optimizer", "scheduler", "rng", "config", "metrics"} <= set(ckpt)


def test_reference_checkpoint_loads_without_opt_in(run, tmp_path):
    """The reference Top-DB-Net layout (rank1 a numpy float64) needs no --trust-checkpoint."""
    reference = tmp_path / "model.pth.tar-400"
    torch.save({"state_dict": random_reference_state("top-db-net"), "epoch": 400, "rank1": np.float64(0.949),
                "optimizer": {"state": {}, "param_groups": [{"lr": 3.5e-5, "params": [0, 1]}]}}, reference)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(reference)  # numpy: not in torch's own list
    result = reidkit_cli("extract", "--config", "tiny.yaml", "model.backbone=resnet50", "--weights", str(reference),
                         "--images", str(run / "data" / "Market-1501-v15.09.15" / "query"),
                         "--output", str(tmp_path / "ref.npz"), cwd=run)
    assert result.returncode == 0, result.stderr
    assert f"weights: {reference} (reference)" in result.stdout


# ---------------------------------------------------------------------------------- one read, named errors


@pytest.fixture
def load_counter(monkeypatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        counts[os.fspath(f)] = counts.get(os.fspath(f), 0) + 1
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return counts


def test_without_config_each_checkpoint_is_read_once(run, tmp_path, load_counter, capsys):
    weights = str(run / "run" / "checkpoints" / "epoch_001.pth")
    last = str(run / "run" / "checkpoints" / "last.pth")
    assert main(["test", "--weights", weights, "--no-rerank", "--output", str(tmp_path / "t")]) == 0
    assert load_counter == {weights: 1}
    load_counter.clear()
    images = str(run / "data" / "Market-1501-v15.09.15" / "query")
    assert main(["extract", "--weights", weights, "--weights", last, "--images", images,
                 "--output", str(tmp_path / "f.npz")]) == 0
    assert load_counter == {weights: 1, last: 1}


def test_resume_without_config_reads_the_checkpoint_once(tmp_path, load_counter, capsys):
    config = write_tiny_config(tmp_path)
    assert main(["train", "--config", str(config)]) == 0
    load_counter.clear()
    assert main(["train", "--resume", str(tmp_path / "run"), "train.epochs=2"]) == 0
    # One read to resume; after the final evaluation each checkpoint of the last epoch is read once more to
    # stamp the evaluation's metrics (the calibrated verification threshold) into it.
    folder = tmp_path / "run" / "checkpoints"
    assert load_counter == {str(folder / "last.pth"): 2, str(folder / "epoch_002.pth"): 1}


def test_load_errors_name_the_file(run, capsys):
    weights = run / "run" / "checkpoints" / "epoch_001.pth"
    assert main(["test", "--config", str(run / "tiny.yaml"), "model.backbone=resnet34", "--weights",
                 str(weights)]) == 2
    err = capsys.readouterr().err
    assert f"reidkit: error: {weights}: entries missing" in err and "<state dict>" not in err
    obj = torch_load(weights)
    with pytest.raises(CheckpointError, match=r"^from_disk\.pth: entries missing"):
        load_weights(build_model("top_db_net", num_classes=8, backbone="resnet34"), obj, source="from_disk.pth")


# --------------------------------------------------------------------------------------- atomic writes


def test_interrupted_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "last.pth"
    atomic_io.atomic_write_text(target, "before")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_io.atomic_open(target, "wb") as handle:
                handle.write(b"x" * 1_000_000)
                raise error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"] and target.read_text() == "before"


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoints" / "last.pth"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from reidkit.utils.io import atomic_open
        with atomic_open({str(target)!r}, "wb") as handle:
            handle.write(b"x" * 1_000_000)
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    left = list(target.parent.glob(".last.pth.reidkit-*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size == 1_000_000
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = target.parent / f".epoch_002.pth.reidkit-{alive.pid}-abcdefgh.tmp"  # a live writer's file
        busy.write_bytes(b"y")
        atomic_io.atomic_write_text(target, "resumed run")
        assert sorted(p.name for p in target.parent.iterdir()) == [busy.name, "last.pth"]
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        atomic_io.atomic_write_text(tmp_path / "report.html", "<html>")
        atomic_io.atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "last.pth")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == expected
    assert (tmp_path / "last.pth").stat().st_mode & 0o777 == expected


def test_rewriting_keeps_the_files_mode(tmp_path):
    target = tmp_path / "results.json"
    atomic_io.atomic_write_json(target, {"a": 1})
    target.chmod(0o640)
    atomic_io.atomic_write_json(target, {"a": 2})
    assert target.stat().st_mode & 0o777 == 0o640


def test_run_outputs_are_readable_by_others_under_umask_022(run):
    outputs = ["run/config.yaml", "run/checkpoints/last.pth", "run/results.json", "run/report.html",
               "run/metrics.jsonl"]
    modes = {name: oct((run / name).stat().st_mode & 0o777) for name in outputs}
    assert modes == {name: "0o644" for name in outputs}
    dataset = run / "data" / "Market-1501-v15.09.15"
    assert oct(dataset.stat().st_mode & 0o777) == "0o755"


# ------------------------------------------------------------------------------------------ TensorBoard


def test_tensorboard_keeps_step_and_epoch_points_apart(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_iter/loss", "train_iter/images_per_sec", "train_epoch/loss", "train_epoch/lr",
            "eval/mAP"} <= tags
    assert not {t for t in tags if t.split("/")[0] not in ("train_iter", "train_epoch", "eval")}
    assert [e.step for e in events.Scalars("train_epoch/loss")] == [1]  # one point per epoch, x = epoch
    iteration_steps = [e.step for e in events.Scalars("train_iter/loss")]
    assert len(iteration_steps) > 1 and iteration_steps == sorted(iteration_steps)
