"""Joint training on data.sources (identities and cameras offset, the sampler and DDP on the union) and
evaluation on test.targets (one table per target plus the mean, in results.json and report.html)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mot_replicas import write_tiny_run_config
from reidkit.cli import main
from reidkit.data.joint import build_joint_dataset, dataset_specs
from reidkit.data.samplers import RandomIdentitySampler
from reidkit.errors import ConfigError

PEOPLE = {"num_ids": 12, "num_cams": 2, "images_per_id_per_cam": [2, 3], "height": 64, "width": 32}


def _sources(tmp_path) -> list[dict]:
    return [{"name": "synthetic", "root": str(tmp_path / "A"), "options": {**PEOPLE, "seed": 1}},
            {"name": "synthetic", "root": str(tmp_path / "B"), "options": {**PEOPLE, "num_cams": 3, "seed": 2}}]


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("joint")
    specs = dataset_specs(_sources(folder), default_root="unused", key="data.sources")
    return folder, build_joint_dataset(specs), [spec.build() for spec in specs]


def test_identities_and_cameras_never_collide(joint):
    _, data, (a, b) = joint
    assert data.pid_ranges == {"synthetic:A": (0, 6), "synthetic:B": (6, 12)}
    assert data.num_train_pids == a.num_train_pids + b.num_train_pids == 12
    assert data.camid_ranges == {"synthetic:A": (0, 2), "synthetic:B": (2, 5)}
    in_a = {p for p, _, _ in a.train}
    for path, pid, camid in data.train:
        label = "synthetic:A" if path in in_a else "synthetic:B"
        low, high = data.pid_ranges[label]
        assert low <= pid < high and data.camid_ranges[label][0] <= camid < data.camid_ranges[label][1]
    # the same relabelled identity 0 exists in both sources: in the union they are two identities
    assert [pid for p, pid, _ in data.train if p == a.train[0][0]] == [a.train[0][1]]
    assert [pid for p, pid, _ in data.train if p == b.train[0][0]] == [b.train[0][1] + 6]
    # test identities: each source's own, renumbered so that no query of A matches a gallery image of B
    test_ids = {path: pid for path, pid, _ in data.query + data.gallery}
    ids_a = {test_ids[p] for p, _, _ in a.query + a.gallery}
    ids_b = {test_ids[p] for p, _, _ in b.query + b.gallery}
    assert not ids_a & ids_b and len(ids_a) == len({pid for _, pid, _ in a.query + a.gallery})


def test_sampler_and_process_shares_draw_from_the_union(joint):
    _, data, _ = joint
    sampler = RandomIdentitySampler(data.train, 8, 4, seed=0)
    drawn = {data.train[i][1] for i in sampler}
    assert drawn & set(range(0, 6)) and drawn & set(range(6, 12))
    shares = [list(RandomIdentitySampler(data.train, 16, 4, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert not set(shares[0]) & set(shares[1])
    batches = RandomIdentitySampler(data.train, 16, 4, seed=0).global_batches()
    assert sorted(shares[0] + shares[1]) == sorted(int(i) for batch in batches for group in batch for i in group)


def test_joint_training_evaluates_each_source_and_the_mean(joint, capsys):
    folder, _, _ = joint
    config = write_tiny_run_config(folder, {"sources": _sources(folder)})
    assert main(["train", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "synthetic:A + synthetic:B: " in out and "/ synthetic:A" in out and "/ mean of 2" in out
    saved = json.loads((folder / "run" / "results.json").read_text())
    assert set(saved["targets"]) == {"synthetic:A", "synthetic:B"} and saved["dataset"] == "synthetic:A + synthetic:B"
    per_target = [saved["targets"][t]["mAP"] for t in ("synthetic:A", "synthetic:B")]
    assert saved["metrics"]["mAP"] == pytest.approx(np.mean(per_target))
    assert all(0 < m <= 1 for m in per_target)
    history = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"mAP", "synthetic:A/mAP", "synthetic:B/Rank-1"} <= set(history[-1])
    report = (folder / "run" / "report.html").read_text()
    assert "synthetic:A: without re-ranking" in report and "mean of 2: without re-ranking" in report


def test_test_targets(joint, capsys):
    folder, _, _ = joint
    weights = folder / "run" / "checkpoints" / "last.pth"
    if not weights.is_file():  # run alone (-k test_test_targets): train the joint run here
        assert main(["train", "--config", str(write_tiny_run_config(folder, {"sources": _sources(folder)}))]) == 0
    a, b = _sources(folder)
    only_b = json.dumps([{**b, "label": "people_b"}])
    assert main(["test", "--weights", str(weights), f"test.targets={only_b}", "output.report=false"]) == 0
    saved = json.loads((folder / "run" / "test" / "results.json").read_text())
    assert saved["dataset"] == "people_b" and "targets" not in saved and 0 < saved["metrics"]["mAP"] <= 1
    alone = saved["metrics"]
    both = json.dumps([{**a, "label": "people_a"}, {**b, "label": "people_b"}])
    assert main(["test", "--weights", str(weights), f"test.targets={both}", "--visrank", "--vis-queries", "1"]) == 0
    saved = json.loads((folder / "run" / "test" / "results.json").read_text())
    assert set(saved["targets"]) == {"people_a", "people_b"}
    # each target is evaluated on its own: the same numbers as when it is the only target
    assert saved["targets"]["people_b"]["mAP"] == pytest.approx(alone["mAP"], abs=1e-6)
    assert saved["metrics"]["Rank-1"] == pytest.approx(
        (saved["targets"]["people_a"]["Rank-1"] + saved["targets"]["people_b"]["Rank-1"]) / 2)
    drawn = {p.parent.name for p in (folder / "run" / "test" / "visualizations").rglob("*.jpg")}
    assert drawn == {"visrank_people_a", "visrank_people_b"}


@pytest.mark.parametrize("sources, message", [
    ('[market1501, {name: nope}]', r"data.sources\[1\].name: unknown dataset 'nope'"),
    ('[{name: synthetic, options: {bogus: 1}}]', r"data.sources\[0\].options.bogus: dataset 'synthetic' has no option"),
    ('[{name: custom, root: a}, {name: custom, root: a}]', r"several entries are labelled \['custom:a'\]"),
])
def test_bad_sources_are_one_line_errors(tmp_path, capsys, sources, message):
    config = write_tiny_run_config(tmp_path, {"name": "synthetic"})
    assert main(["train", "--config", str(config), f"data.sources={sources}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reidkit: error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"test.targets\[0\]"):
        dataset_specs([{"name": "custom", "root": "x", "colour": 1}], default_root="d", key="test.targets")


def test_two_processes_train_on_the_union(tmp_path):
    config = write_tiny_run_config(tmp_path, {"sources": _sources(tmp_path)}, train={"batch_size": 16})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "reidkit", "train", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 processes" in done.stdout and "of 12 identities" in done.stdout
    assert set(json.loads((tmp_path / "run" / "results.json").read_text())["targets"]) == {"synthetic:A",
                                                                                          "synthetic:B"}
