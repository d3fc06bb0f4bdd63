"""`data.options.split: auto`: a folder of identities split into train / query / gallery, seeded, disjoint,
written next to the data and read back."""
from __future__ import annotations

import json

import pytest
from data_replicas import write_image

from reidkit.data import build_dataset
from reidkit.errors import DatasetError


def _pool(root, num_ids: int = 10, per_id: int = 4, cameras: bool = False):
    """root/<pid>/[<camid>/]<i>.jpg"""
    for pid in range(1, num_ids + 1):
        for i in range(per_id):
            parts = [str(pid), str(i % 2)] if cameras else [str(pid)]
            write_image(root.joinpath(*parts, f"{i}.jpg"), (pid * 20 % 256, i * 60, 5))
    return root


def _split(data):
    return {name: sorted(getattr(data, name)) for name in ("query", "gallery")} | {
        "train": sorted(p for p, _, _ in data.train)}


def test_split_is_disjoint_and_complete(tmp_path):
    root = _pool(tmp_path / "pool")
    data = build_dataset("custom", root=root, split="auto", train_ids=0.4, query_per_id=1, distractor_ids=1)
    train_files = {p for p, _, _ in data.train}
    query_ids, gallery_ids = {pid for _, pid, _ in data.query}, {pid for _, pid, _ in data.gallery}
    train_ids = {int(p.split("/")[-2]) for p in train_files}
    assert len(train_ids) == 4 and not train_ids & gallery_ids  # identities: train and test disjoint
    assert len(gallery_ids) == 6 and len(query_ids) == 5 and query_ids < gallery_ids  # one distractor id
    query_files, gallery_files = {p for p, _, _ in data.query}, {p for p, _, _ in data.gallery}
    assert not query_files & gallery_files and not train_files & (query_files | gallery_files)
    assert len(train_files) + len(query_files) + len(gallery_files) == 40  # every image used once
    assert len(data.query) == 5 and not data.has_cameras and data.eval_protocol == "self"


def test_split_is_reproducible_written_and_reused(tmp_path):
    root = _pool(tmp_path / "pool")
    first = build_dataset("custom", root=root, split="auto", split_seed=7)
    written = root / "reidkit-split-seed7-train0.5-query1-distractors0.json"
    record = json.loads(written.read_text())
    assert record["options"] == {"seed": 7, "train_ids": 0.5, "query_per_id": 1, "distractor_ids": 0.0}
    assert all(not path.startswith("/") for path in record["query"])  # relative: the folder can move
    assert _split(build_dataset("custom", root=root, split="auto", split_seed=7)) == _split(first)
    other = build_dataset("custom", root=root, split="auto", split_seed=8)
    assert _split(other) != _split(first) and len(list(root.glob("reidkit-split-*.json"))) == 2
    # the stored split is what is used: an identity moved to training in the file moves in the dataset
    moved = record["test"][0]
    record["test"].remove(moved)
    record["train"].append(moved)
    written.write_text(json.dumps(record))
    changed = build_dataset("custom", root=root, split="auto", split_seed=7)
    assert moved not in {pid for _, pid, _ in changed.gallery} and changed.num_train_pids == first.num_train_pids + 1
    # a moved folder keeps its split
    moved_root = tmp_path / "elsewhere"
    root.rename(moved_root)
    assert len(build_dataset("custom", root=moved_root, split="auto", split_seed=7).query) == len(changed.query)


def test_new_identities_are_refused_and_new_images_follow_their_identity(tmp_path):
    root = _pool(tmp_path / "pool")
    first = build_dataset("custom", root=root, split="auto")
    test_pid = first.query[0][1]
    write_image(root / str(test_pid) / "new.jpg")
    again = build_dataset("custom", root=root, split="auto")
    assert again.query == first.query and str(root / str(test_pid) / "new.jpg") in {p for p, _, _ in again.gallery}
    write_image(root / "99" / "0.jpg")
    with pytest.raises(DatasetError, match=r"does not list identities \[99\] of the data; delete it"):
        build_dataset("custom", root=root, split="auto")


def test_every_test_image_as_query_and_csv_pool_with_cameras(tmp_path):
    root = _pool(tmp_path / "pool", cameras=True)
    lines = ["path,pid,camid"] + [f"{p.relative_to(root)},{p.parts[-3]},{p.parts[-2]}"
                                  for p in sorted(root.rglob("*.jpg"))]
    (root / "all.csv").write_text("\n".join(lines) + "\n")
    data = build_dataset("custom", root=root / "all.csv", split="auto", query_per_id=0)
    assert data.has_cameras and data.eval_protocol == "market"
    assert sorted(data.query) == sorted(data.gallery) and len(data.query) == 20
    assert (root / "all.reidkit-split-seed0-train0.5-query0-distractors0.json").is_file()


@pytest.mark.parametrize("options, message", [
    (dict(split="manual"), "split='manual': expected auto"),
    (dict(split="auto", train_ids=0), "train_ids=0: expected a fraction"),
    (dict(split="auto", train_ids=10), "gives 10 to training, 0 distractors and 0 to test"),
    (dict(split="auto", query_per_id=-1), "query_per_id=-1: expected an integer >= 0"),
])
def test_bad_split_options(tmp_path, options, message):
    with pytest.raises(DatasetError, match=message):
        build_dataset("custom", root=_pool(tmp_path / "pool"), **options)


def test_split_auto_needs_an_unsplit_pool(tmp_path):
    root = _pool(tmp_path / "pool")
    (root / "train").mkdir()
    with pytest.raises(DatasetError, match="already split"):
        build_dataset("custom", root=root, split="auto")
    csv = tmp_path / "split.csv"
    csv.write_text("path,pid,split\npool/1/0.jpg,1,train\n")
    with pytest.raises(DatasetError, match="has a split column"):
        build_dataset("custom", root=csv, split="auto")


def test_split_flag_on_the_command_line(tmp_path, capsys):
    from reidkit.cli import main

    root = _pool(tmp_path / "pool")
    assert main(["data", "check", "--name", "custom", "--root", str(root), "--split", "auto", "--no-progress",
                 "train.batch_size=8"]) == 0
    assert "evaluation protocol 'self', no camera ids" in capsys.readouterr().out
    assert (root / "reidkit-split-seed0-train0.5-query1-distractors0.json").is_file()
    assert main(["config", "--split", "auto", "data.name=custom"]) == 0
    assert "options: {split: auto}" in capsys.readouterr().out
