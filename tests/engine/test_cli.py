"""The `reidkit` command line end to end on a tiny run: train, resume, test with re-ranking and ranked lists,
extract, demo; and the errors a user meets (one line, exit code 2, nothing overwritten)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from reidkit.cli import _parse_with_overrides_anywhere, build_parser, main

from cli_helpers import write_tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("cli_run")
    config = write_tiny_config(folder)
    assert main(["train", "--config", str(config)]) == 0
    return folder


def test_train_writes_every_record(trained_run, capsys):
    run = trained_run / "run"
    assert (run / "checkpoints" / "last.pth").is_file() and (run / "checkpoints" / "epoch_001.pth").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["backbone"] == "resnet18" and saved["train"]["epochs"] == 1
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1] and "loss" in history[0] and "mAP" in history[0]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    assert {"mAP", "Rank-1", "mINP", "rerank/mAP", "rerank/Rank-1"} <= set(metrics)
    assert 0.0 <= metrics["mAP"] <= 1.0
    assert (run / "report.html").is_file()


def test_second_train_into_same_folder_is_refused_and_keeps_checkpoint(trained_run, capsys):
    last = trained_run / "run" / "checkpoints" / "last.pth"
    before = last.read_bytes()
    assert main(["train", "--config", str(trained_run / "tiny.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error: output.dir") and "--resume" in err and "Traceback" not in err
    assert last.read_bytes() == before


def test_resume_continues_to_more_epochs(trained_run, capsys):
    run = trained_run / "run"
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    assert "resuming" in capsys.readouterr().out
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]


def test_test_command_reports_and_draws(trained_run, capsys):
    weights = trained_run / "run" / "checkpoints" / "epoch_001.pth"
    assert main(["test", "--weights", str(weights), "--rerank", "--visrankactiv", "--vis-queries", "2",
                 "--topk", "3"]) == 0
    out = capsys.readouterr().out
    assert "without re-ranking" in out and "with re-ranking" in out
    test_dir = trained_run / "run" / "test"
    assert json.loads((test_dir / "results.json").read_text())["metrics"]["Rank-1"] >= 0
    drawn = sorted((test_dir / "visualizations").rglob("*.jpg"))
    assert len(drawn) == 2 and drawn[0].parent.name == "visrankactiv_synthetic"


def test_extract_writes_features_of_a_folder(trained_run, tmp_path, capsys):
    images = trained_run / "data" / "Market-1501-v15.09.15" / "query"
    weights = str(trained_run / "run" / "checkpoints" / "epoch_001.pth")
    assert main(["extract", "--weights", weights, "--images", str(images), "--output", "feats.txt"]) == 2
    assert "--output feats.txt: expected a file ending in .npz" in capsys.readouterr().err
    output = tmp_path / "query.npz"
    assert main(["extract", "--weights", weights, "--images", str(images), "--output", str(output)]) == 0
    data = np.load(output)
    assert data["features"].shape == (len(list(images.glob("*.jpg"))), 512 + 1024)
    assert data["paths"][0].endswith(".jpg")


@pytest.mark.parametrize("argv, expected", [
    (["train", "--config", "configs/top_db_net/market1501.yaml", "optim.lrr=1"], "did you mean 'optim.lr'"),
    (["train", "--config", "configs/top_db_net/market1501.yaml", "train.epochs=abc"], "expected an integer"),
    (["train", "--config", "no_such.yaml"], "config file 'no_such.yaml' not found"),
    (["train", "--config", "configs/top_db_net/market1501.yaml", "--root", "/nonexistent/reid",
      "model.pretrained=null"], "root folder /nonexistent/reid does not exist. Expected layout"),
    (["test", "--weights", "/nonexistent/model.pth"], "/nonexistent/model.pth"),
    (["extract", "--weights", "/nonexistent/model.pth", "--images", ".", "--output", "x.npz"],
     "/nonexistent/model.pth"),
])
def test_bad_input_is_one_line_naming_it(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "train.device=cpu"] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error:") and expected in err and "Traceback" not in err


def test_every_command_has_useful_help(capsys):
    parser = build_parser()
    for command in ("train", "test", "extract", "demo", "config"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([command, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "usage: reidkit " + command in text and ("example" in text or command in ("config", "demo"))
    with pytest.raises(SystemExit) as exit_:
        main(["postprocess", "--help"])  # its own parser, behind the top-level one
    assert exit_.value.code == 0 and "usage: reidkit postprocess" in capsys.readouterr().out


def test_demo_runs_end_to_end_on_a_small_override(tmp_path, capsys):
    """The demo's own code path (cache, run folder, untrained baseline, training, table), at the tests' size."""
    overrides = ["data.options={num_ids: 16, num_cams: 3, images_per_id_per_cam: [2, 3], height: 64, width: 32}",
                 "data.height=64", "data.width=32", "model.pretrained=null", "model.backbone=resnet18",
                 "train.epochs=1", "train.batch_size=8", "test.max_rank=5", "output.progress=false",
                 "train.threads=1"]
    argv = ["demo", "--output", str(tmp_path / "runs" / "demo"), "--cache", str(tmp_path / "cache"), *overrides]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "untrained (random weights)" in out and "with re-ranking" in out and "report.html" in out
    report = (tmp_path / "runs" / "demo" / "report.html").read_text()
    assert "<td>untrained (random weights)</td>" in report  # the baseline the table printed, in percent too
    untrained_row = next(line for line in out.splitlines() if line.startswith("untrained (random weights)"))
    assert "".join(f"<td>{value}</td>" for value in untrained_row.split()[3:]) in report
    assert (tmp_path / "cache" / "synthetic_people" / "Market-1501-v15.09.15" / "query").is_dir()
    assert "test images indexed into" in out and f"reidkit search --db {tmp_path / 'runs' / 'demo' / 'gallery'}" in out
    assert main(argv) == 0  # a second demo goes to a new folder, the first is kept
    assert (tmp_path / "runs" / "demo" / "checkpoints" / "last.pth").is_file()
    assert (tmp_path / "runs" / "demo_2" / "checkpoints" / "last.pth").is_file()


def test_train_with_loader_workers_exits_when_done(tmp_path):
    """Workers ignore Ctrl-C but not SIGTERM, which multiprocessing sends leftover workers at exit."""
    import subprocess
    import sys

    config = write_tiny_config(tmp_path, data={"workers": 1}, output={"report": False})
    done = subprocess.run([sys.executable, "-m", "reidkit", "train", "--config", str(config)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").is_file()


def test_overrides_may_stand_between_options(capsys):
    parsed = _parse_with_overrides_anywhere(
        build_parser(), ["test", "--weights", "w.pth", "data.name=market1501", "--visdrop", "test.topk=3"])
    assert parsed.overrides == ["data.name=market1501", "test.topk=3"] and parsed.visdrop
    with pytest.raises(SystemExit):
        _parse_with_overrides_anywhere(build_parser(), ["test", "--weights", "w.pth", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
