"""Issue 13, class 2 as a user meets it: no run folder is lost or overwritten. `reidkit` is driven as a user
would (a subprocess per command, tiny synthetic runs); where a failure has no honest trigger from outside
(an evaluation that fails at the last epoch, a disk that fills up while results are written), launch.train
runs in-process with that one call made to fail. Also the two class-3 items of the run code: changed
optimiser settings on resume apply and are named, and resume is exact with data-loading workers."""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from reidkit.config import load_config
from reidkit.engine import launch, targets
from reidkit.engine.checkpoint import load_checkpoint
from reidkit.engine.hooks import LoggerHook
from reidkit.engine.trainer import TrainingInterrupted
from reidkit.metrics._checks import MetricInputError

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from cli_helpers import TINY_DATA_OPTIONS, write_tiny_config  # noqa: E402

QUIET = {"report": False, "tensorboard": False}


def reidkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reidkit", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with exit code 2 and one line `reidkit: error: ...` holding every fragment."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reidkit: error: "), done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: (sha256, mtime in ns), by relative path."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = model_state(a), model_state(b)
    assert first.keys() == second.keys()
    assert [k for k in first if not torch.equal(first[k], second[k])] == []


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished one-epoch run (report included) with its data; tests copy it before changing anything."""
    folder = tmp_path_factory.mktemp("finished")
    ok(reidkit("train", "--config", write_tiny_config(folder, output={"tensorboard": False})))
    return folder


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    """A copy of the finished run folder (as a user copies a run to try something on it)."""
    return Path(shutil.copytree(finished / "run", tmp_path / "copy"))


# ------------------------------------------------------------------------------------------------ resume


def test_resume_of_a_copied_run_writes_into_the_copy(finished, run_copy):
    original = snapshot(finished / "run")
    done = ok(reidkit("train", "--resume", run_copy, "train.epochs=2"))
    assert snapshot(finished / "run") == original  # not a byte, not a time stamp changed
    assert f"continuing in {run_copy}" in done.stdout and "changed optimiser" not in done.stdout
    assert [h["epoch"] for h in history(run_copy)] == [1, 2] and "mAP" in history(run_copy)[1]
    assert load_checkpoint(run_copy / "checkpoints" / "last.pth")["epoch"] == 2
    assert yaml.safe_load((run_copy / "config.yaml").read_text())["output"]["dir"] == str(run_copy)
    results = json.loads((run_copy / "results.json").read_text())
    assert results["epoch"] == 2 and results["checkpoint"] == str(run_copy / "checkpoints" / "epoch_002.pth")


def test_resume_of_a_finished_run_says_so_and_changes_nothing(run_copy):
    before = snapshot(run_copy)
    assert json.loads((run_copy / "results.json").read_text())["metrics"]["mAP"] > 0
    done = ok(reidkit("train", "--resume", run_copy))
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "finished: all 1 epochs trained and evaluated" in lines[0], done.stdout
    assert "train.epochs=N" in lines[0] and "Traceback" not in done.stderr
    assert snapshot(run_copy) == before  # results.json keeps its metrics; nothing rewritten


@pytest.mark.parametrize("failure", ["evaluation", "full disk"])
def test_failed_final_evaluation_keeps_the_last_epoch_and_resume_redoes_only_it(tmp_path, monkeypatch, failure):
    """The last epoch's checkpoint is written before the final evaluation: re-ranking refusing collapsed
    features (MetricInputError), or a full disk while results.json is written, costs no training."""
    cfg = load_config(write_tiny_config(tmp_path, train={"epochs": 2}, output=QUIET))
    if failure == "evaluation":
        def refuse(*args, **kwargs):
            raise MetricInputError("item 0 has no positive distance to any item: ... (all-identical features)")
        monkeypatch.setattr(targets, "evaluate_model", refuse)
        with pytest.raises(MetricInputError):
            launch.train(cfg)
    else:
        def disk_full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(launch, "write_results", disk_full)
        with pytest.raises(OSError):
            launch.train(cfg)
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    assert load_checkpoint(last)["epoch"] == 2 and not (run / "results.json").exists()
    weights = load_checkpoint(last)["model"]
    trained = history(run)
    assert [h["epoch"] for h in trained] == [1, 2]
    monkeypatch.undo()

    done = ok(reidkit("train", "--resume", run))
    assert "all 2 epochs done, the final evaluation is missing: evaluating" in done.stdout
    assert "epoch 1/2" not in done.stdout and "epoch 2/2" not in done.stdout  # no training
    resumed = load_checkpoint(last)  # the same weights, now with the final evaluation's metrics
    assert resumed["model"].keys() == weights.keys()
    assert all(torch.equal(resumed["model"][k], v) for k, v in weights.items())
    assert resumed["metrics"]["mAP"] > 0
    results = json.loads((run / "results.json").read_text())
    assert results["epoch"] == 2 and results["metrics"]["mAP"] > 0
    record = history(run)[-1]
    assert record["epoch"] == 2 and record["loss"] == trained[-1]["loss"] and record["mAP"] == results["metrics"]["mAP"]
    assert "finished" in ok(reidkit("train", "--resume", run)).stdout


def test_rejected_resumes_leave_every_file_as_it_was(run_copy):
    before = snapshot(run_copy)
    # weights that do not fit the changed model; another optimiser (its state does not carry over); an earlier
    # checkpoint of the run, whose resume in place would replace last.pth and the later records
    one_line_error(reidkit("train", "--resume", run_copy, "model.backbone=resnet34", "train.epochs=2"),
                   "the model weights do not fit")
    one_line_error(reidkit("train", "--resume", run_copy, "optim.name=sgd", "train.epochs=2"),
                   "optim.name='sgd'", "'adam'", "model.weights=")
    one_line_error(reidkit("train", "--resume", run_copy / "checkpoints" / "epoch_001.pth", "train.epochs=2"),
                   "would replace", "--output NEW")
    assert snapshot(run_copy) == before  # config.yaml included: it is written only after every check


def test_changed_optimiser_settings_apply_on_resume_and_are_named(run_copy, tmp_path):
    """Continued into a new folder (--output) from the run's epoch file, with a lower learning rate."""
    source = snapshot(run_copy)
    fork = tmp_path / "fork"
    done = ok(reidkit("train", "--resume", run_copy / "checkpoints" / "epoch_001.pth", "--output", fork,
                      "train.epochs=2", "optim.lr=5e-4"))
    assert "changed optimiser/schedule settings apply from here on" in done.stdout
    assert "optim.lr: 0.001 -> 0.0005" in done.stdout
    assert [(h["epoch"], h["lr"]) for h in history(fork)] == [(2, 5e-4)]  # constant schedule: the new LR
    saved = load_checkpoint(fork / "checkpoints" / "last.pth")
    assert saved["epoch"] == 2 and saved["optimizer"]["param_groups"][0]["lr"] == 5e-4
    assert yaml.safe_load((fork / "config.yaml").read_text())["optim"]["lr"] == 5e-4
    assert snapshot(run_copy) == source


# -------------------------------------------------------------------------------------------- new runs


def test_new_run_refuses_a_folder_whose_checkpoints_were_moved(run_copy, tmp_path):
    shutil.move(run_copy / "checkpoints", tmp_path / "moved")
    before = snapshot(run_copy)
    config = write_tiny_config(tmp_path, output={**QUIET, "dir": str(run_copy)})
    one_line_error(reidkit("train", "--config", config), f"output.dir {run_copy} already holds config.yaml",
                   "metrics.jsonl", "results.json", "report.html", "nothing was overwritten")
    assert snapshot(run_copy) == before
    assert launch.fresh_run_dir(run_copy) == run_copy.with_name("copy_2")  # the demo's choice agrees


def test_runs_sharing_a_synthetic_folder_with_other_options_keep_each_others_images(finished, tmp_path):
    data = finished / "data"
    images = snapshot(data)
    other = write_tiny_config(tmp_path, data={"root": str(data), "options": {**TINY_DATA_OPTIONS, "num_ids": 12}},
                              output=QUIET)
    one_line_error(reidkit("train", "--config", other), "generated with other options (num_ids 16 there, 12 here)",
                   "it is not replaced", "data.root")
    assert snapshot(data) == images
    assert not (tmp_path / "run").exists()  # refused before the run folder was touched


# ------------------------------------------------------------------------------------------ test, extract


def test_second_test_into_one_folder_replaces_the_pictures_and_keeps_the_users(finished, run_copy):
    weights = run_copy / "checkpoints" / "last.pth"
    ok(reidkit("test", "--weights", weights, "--visrank", "--vis-queries", "4"))
    pictures = run_copy / "test" / "visualizations" / "visrank_synthetic"
    assert len(list(pictures.glob("*.jpg"))) == 4
    assert not (finished / "run" / "test").exists()  # the copy's weights write into the copy
    (pictures.parent / "notes.txt").write_text("mine")
    done = ok(reidkit("test", "--weights", weights, "--visrank", "--vis-queries", "2"))
    assert len(list(pictures.glob("*.jpg"))) == 2  # the first test's other two are gone
    kept = run_copy / "test" / "visualizations.kept-1"
    assert (kept / "notes.txt").read_text() == "mine" and f"now in {kept}" in done.stdout
    assert not list(kept.rglob("*.jpg"))  # only what reidkit did not write was kept
    ok(reidkit("test", "--weights", weights))  # no pictures asked: the old ones go, nothing else to keep
    assert not list((run_copy / "test" / "visualizations").rglob("*.jpg"))
    assert not (run_copy / "test" / "visualizations.kept-2").exists()


def test_output_onto_an_input_is_refused_before_any_work(finished, tmp_path):
    data = finished / "data" / "Market-1501-v15.09.15"
    weights = tmp_path / "weights.pt"
    shutil.copyfile(finished / "run" / "checkpoints" / "last.pth", weights)
    untouched = weights.read_bytes()
    one_line_error(reidkit("extract", "--weights", weights, "--images", data / "query", "--output", weights),
                   "is the --weights file")
    assert weights.read_bytes() == untouched
    one_line_error(reidkit("extract", "--weights", weights, "--images", data / "query", "--output",
                           data / "query" / "features.npz"), "lies inside the --images folder")
    assert not (data / "query" / "features.npz").exists()

    features = tmp_path / "features.npz"
    rng = np.random.default_rng(0)
    np.savez(features, query_f=rng.random((3, 4), dtype=np.float32), gallery_f=rng.random((5, 4), dtype=np.float32))
    untouched = features.read_bytes()
    one_line_error(reidkit("postprocess", features, "-o", features), "is the feature file")
    assert features.read_bytes() == untouched

    dataset = snapshot(data)
    one_line_error(reidkit("test", "--weights", weights, "--output", data), "lies inside the dataset folder")
    assert snapshot(data) == dataset and not (data / "test").exists()


# ------------------------------------------------------------------------------------- exact resume, workers


class _StopAt(LoggerHook):
    """LoggerHook that sends SIGINT (as Ctrl-C would) after step `iteration` of epoch index `epoch`."""

    at = (1, 2)

    def after_step(self) -> None:
        super().after_step()
        if (self.trainer.epoch, self.trainer.iter) == self.at:
            signal.raise_signal(signal.SIGINT)


_StopAt.__name__ = "LoggerHook"  # a checkpoint keeps hook states under the hook's class name


def test_resume_is_exact_with_loader_workers(tmp_path, monkeypatch):
    """With data.workers=2 (fresh workers after a resume), a run stopped at an epoch's end or in the middle of
    one and resumed ends with the losses and weights of the run that never stopped."""
    def config(name: str, epochs: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        return write_tiny_config(folder, data={"root": str(tmp_path / "data"), "workers": 2},
                                 train={"epochs": epochs}, output=QUIET)

    ok(reidkit("train", "--config", config("straight", 2)))
    ok(reidkit("train", "--config", config("boundary", 1)))
    ok(reidkit("train", "--resume", tmp_path / "boundary" / "run", "train.epochs=2"))

    monkeypatch.setattr(launch, "LoggerHook", _StopAt)
    cfg = load_config(config("middle", 2))
    with pytest.raises(TrainingInterrupted):
        launch.train(cfg)
    assert load_checkpoint(tmp_path / "middle" / "run" / "checkpoints" / "last.pth")["iteration"] == 2
    monkeypatch.undo()
    launch.train(cfg, resume=cfg.output.dir)

    straight = tmp_path / "straight" / "run"
    losses = [h["loss"] for h in history(straight)]
    assert len(losses) == 2 and losses[0] != losses[1]
    for name in ("boundary", "middle"):
        run = tmp_path / name / "run"
        assert [h["loss"] for h in history(run)] == losses, name
        assert_same_weights(run / "checkpoints" / "last.pth", straight / "checkpoints" / "last.pth")


def test_loader_workers_do_not_change_the_batches(finished):
    """The batches depend on the seed, the epoch and the position only: data.workers=0 and 2 load the same."""
    from reidkit.data import build_dataset, build_train_loader

    dataset = build_dataset("synthetic", finished / "data", **TINY_DATA_OPTIONS)

    def epochs(workers: int, sampler: str) -> list[torch.Tensor]:
        loader = build_train_loader(dataset.train, height=64, width=32, batch_size=8, num_instances=4, seed=0,
                                    workers=workers, sampler=sampler)
        drawn = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            drawn.append(torch.cat([batch["img"] for batch in loader]))
        return drawn

    for sampler in ("identity", "balanced"):
        in_process, by_workers = epochs(0, sampler), epochs(2, sampler)
        assert all(torch.equal(a, b) for a, b in zip(in_process, by_workers)), sampler
        assert not torch.equal(in_process[0], in_process[1])  # epochs differ
