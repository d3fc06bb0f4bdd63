"""`torchrun --nproc_per_node 2 -m reidkit train` on the CPU (gloo): two processes, sharded sampler, files and
evaluation on rank 0 only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from reidkit.data.samplers import RandomIdentitySampler
from reidkit.engine.checkpoint import load_checkpoint
from reidkit.errors import ConfigError

from cli_helpers import write_tiny_config


def test_two_cpu_processes_train_one_model(tmp_path):
    config = write_tiny_config(tmp_path, train={"epochs": 2, "threads": 1, "batch_size": 16})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "reidkit", "train", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 processes" in done.stdout
    assert done.stdout.count("training top_db_net") == 1  # rank 0 alone prints and writes
    run = tmp_path / "run"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert "mAP" in json.loads((run / "results.json").read_text())["metrics"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pth", for_resume=True)
    assert ckpt["epoch"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved unwrapped from DDP
    assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values())


def test_each_process_needs_two_identities_per_batch():
    samples = [(f"{p}_{i}.jpg", p, 0) for p in range(8) for i in range(4)]
    with pytest.raises(ConfigError, match="each of the 2 processes 1 identity per batch.*raise batch_size to 16"):
        RandomIdentitySampler(samples, 8, 4, rank=0, world_size=2)
