"""Issue 13, classes 3 and 4 as a user meets them: every user error is one line `reidkit: error: ...` naming the
key or the file, with exit code 2 and no traceback; paths stay strings; nonsense settings are refused before any
data is read; bad inputs are neither dropped nor mangled silently."""
from __future__ import annotations

import errno
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from cli_helpers import TINY_DATA_OPTIONS, write_tiny_config  # noqa: E402

MARKET = "Market-1501-v15.09.15"


def reidkit_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m reidkit ARGS`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "reidkit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def reidkit_main(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """`reidkit ARGS` in this process (reidkit.cli.main, what the console script runs): for the many variants
    of one check, where a fresh interpreter per variant would only add its start-up."""
    from reidkit.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a refused command (exit 2, no traceback), holding every fragment."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("reidkit: error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny Market-1501 layout (drawn people, 64x32) read as market1501, its config, and the weights of one
    trained epoch."""
    from reidkit.data.synthetic import generate_market_dataset

    folder = tmp_path_factory.mktemp("user_errors")
    options = {**TINY_DATA_OPTIONS, "images_per_id_per_cam": tuple(TINY_DATA_OPTIONS["images_per_id_per_cam"])}
    generate_market_dataset(folder / "data", **options)
    config = write_tiny_config(folder, data={"name": "market1501", "root": str(folder / "data"), "options": {}})
    trained = reidkit_cli("train", "--config", config, cwd=folder)
    assert trained.returncode == 0, trained.stderr[-3000:]
    return {"folder": folder, "config": config, "data": folder / "data",
            "weights": folder / "run" / "checkpoints" / "last.pth"}


def damaged_copy(world: dict[str, Path], name: str, subset: str, damage, count: int | None = 1) -> Path:
    """A copy of the dataset with `damage(path)` applied to the first `count` images of `subset` (None: all)."""
    root = world["folder"] / name
    if not root.exists():
        shutil.copytree(world["data"], root)
        images = sorted((root / MARKET / subset).glob("*.jpg"))
        for path in images[:count]:
            damage(path)
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def png_header_claiming(path: Path, width: int, height: int) -> None:
    """A tiny file whose PNG header announces width x height pixels: a decompression bomb for whoever decodes it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------- paths are strings


@pytest.mark.parametrize("flag, key, value", [
    ("--output", "output.dir", "runs/exp #3"), ("--output", "output.dir", "0x10"),
    ("--output", "output.dir", "2026-12-01"), ("--root", "data.root", "no"), ("--root", "data.root", "1e3"),
])
def test_path_flags_are_taken_as_written(world, flag, key, value):
    result = reidkit_cli("config", "--config", world["config"], flag, value, cwd=world["folder"])
    assert result.returncode == 0, result.stderr
    section, name = key.split(".")
    assert yaml.safe_load(result.stdout)[section][name] == value


def test_string_keys_keep_their_text_in_overrides_and_files(world):
    config = world["folder"] / "dated.yaml"
    config.write_text("output:\n  dir: 2026-12-01\ndata:\n  root: 0x10\nmodel:\n  pretrained: null\n")
    result = reidkit_cli("config", "--config", config, "model.weights=no", "data.recipe=bdb", cwd=world["folder"])
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert (cfg["output"]["dir"], cfg["data"]["root"], cfg["model"]["weights"]) == ("2026-12-01", "0x10", "no")
    assert cfg["model"]["pretrained"] is None
    assert yaml.safe_load(reidkit_cli("config", "--config", config, "model.pretrained=~",
                                      cwd=world["folder"]).stdout)["model"]["pretrained"] is None


# ------------------------------------------------------------------ config values, before any data is read


@pytest.mark.parametrize("override, fragment", [
    ("schedule.gamma=-0.1", "schedule.gamma=-0.1: expected a value in (0, 1]"),
    ("optim.lr=nan", "optim.lr='nan': expected a finite number"),
    ("optim.lr=-1e-3", "optim.lr=-0.001: expected a value > 0"),
    ("optim.weight_decay=-1", "optim.weight_decay"),
    ("loss.margin=-0.3", "loss.margin"),
    ("test.k1=0", "test.k1=0: expected a value >= 1"),
    ("test.lambda_value=1.5", "test.lambda_value=1.5: expected a value in [0, 1]"),
    ("test.maskthr=2", "test.maskthr"),
    ("test.topk=0", "test.topk"),
    ("train.epochs=0", "train.epochs"),
    ("data.height=0", "data.height"),
    ("optim.betas=[0.9, 1.5]", "optim.betas"),
    ("loss.weights={drop/triplet: -1}", "loss.weights"),
])
def test_config_bounds_are_one_line(world, override, fragment):
    one_error_line(reidkit_cli("config", "--config", world["config"], override, cwd=world["folder"]), fragment)


def test_train_refuses_a_negative_gamma_before_reading_any_data(world, tmp_path):
    result = reidkit_cli("train", "--config", world["config"], "--root", tmp_path / "never_read", "--output",
                         tmp_path / "run", "schedule.gamma=-1", cwd=world["folder"])
    one_error_line(result, "schedule.gamma=-1.0")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, fragments", [
    (["optim.lr=nan"], ["optim.lr"]),
    (["data.options={verify_imagez: true}"],
     ["data.options.verify_imagez", "did you mean 'data.options.verify_images'"]),
    (["data.options={skip_bad_image: true}"], ["did you mean 'data.options.skip_bad_images'"]),
    (["train.batch_size=4", "data.num_instances=4"], ["train.batch_size=4", "one identity"]),
    (["schedule.name=warmup_db", "schedule.milestones=[5]"], ["schedule.milestones"]),
])
def test_train_refuses_before_reading_any_data(world, tmp_path, capsys, overrides, fragments):
    result = reidkit_main(capsys, "train", "--config", world["config"], "--root", tmp_path / "never_read",
                          "--output", tmp_path / "run", *overrides)
    one_error_line(result, *fragments)
    assert not (tmp_path / "run").exists() and not (tmp_path / "never_read").exists()


def test_non_utf8_config_file_is_one_line(world):
    config = world["folder"] / "latin1.yaml"
    config.write_bytes("output:\n  dir: runs/caf\xe9\n".encode("latin-1"))
    one_error_line(reidkit_cli("config", "--config", config, cwd=world["folder"]), str(config), "not UTF-8")


@pytest.mark.parametrize("flags, fragment", [
    (["--vis-queries", "0", "--visrank"], "test.vis_queries=0"),
    (["--maskthr", "1.5", "--visrankactivthr"], "test.maskthr=1.5"),
    (["--topk", "-2", "--visrank"], "test.topk=-2"),
    (["test.k1=500"], "test.k1=500 is not below the gallery size"),
])
def test_test_settings_are_refused_before_the_evaluation(world, tmp_path, capsys, flags, fragment):
    result = reidkit_main(capsys, "test", "--config", world["config"], "--weights", world["weights"], "--output",
                          tmp_path / "out", *flags)
    one_error_line(result, fragment)
    assert "without re-ranking" not in result.stdout


@pytest.mark.parametrize("scales", [["0"], ["nan"], ["inf"], ["1", "-1"]])
def test_extract_refuses_bad_scales(world, tmp_path, capsys, scales):
    run = reidkit_cli if scales == ["inf"] else lambda *a, cwd: reidkit_main(capsys, *a)
    result = run("extract", "--weights", world["weights"], "--images", world["data"] / MARKET / "query",
                 "--output", tmp_path / "f.npz", "--scales", *scales, cwd=world["folder"])
    one_error_line(result, "--scales", "positive finite")
    assert not (tmp_path / "f.npz").exists()


# --------------------------------------------------------------------------------------------- bad images


def test_bad_image_in_a_loader_worker_is_one_line_naming_it(world, tmp_path):
    root = damaged_copy(world, "truncated_query", "query", truncate)
    bad = sorted((root / MARKET / "query").glob("*.jpg"))[0]
    result = reidkit_cli("test", "--config", world["config"], "--weights", world["weights"], "--root", root,
                         "--output", tmp_path / "out", "data.workers=2", cwd=world["folder"])
    one_error_line(result, str(bad), "cannot be read")


def test_bad_training_image_in_a_loader_worker_is_one_line(world, tmp_path):
    root = damaged_copy(world, "garbage_train", "bounding_box_train", lambda p: p.write_bytes(b"GIF89a junk"),
                        count=None)
    result = reidkit_cli("train", "--config", world["config"], "--root", root, "--output", tmp_path / "run",
                         "data.workers=2", cwd=world["folder"])
    one_error_line(result, str(root / MARKET / "bounding_box_train"), "cannot be read")


def test_decompression_bomb_is_one_line(world, tmp_path):
    root = damaged_copy(world, "bomb_query", "query", lambda p: png_header_claiming(p, 20000, 20000))
    bad = sorted((root / MARKET / "query").glob("*.jpg"))[0]
    result = reidkit_cli("test", "--config", world["config"], "--weights", world["weights"], "--root", root,
                         "--output", tmp_path / "out", "data.workers=2", cwd=world["folder"])
    one_error_line(result, str(bad), "too large to decode safely")


def test_skip_bad_images_works_without_verify_images(world, tmp_path):
    root = damaged_copy(world, "truncated_query", "query", truncate)
    result = reidkit_cli("test", "--config", world["config"], "--weights", world["weights"], "--root", root,
                         "--output", tmp_path / "out", "data.workers=2", "data.options={skip_bad_images: true}",
                         "test.rerank=false", cwd=world["folder"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 unreadable images" in result.stderr and "without re-ranking" in result.stdout


# ------------------------------------------------------------------------------------------ file system


def test_output_path_that_is_a_file_is_one_line(world, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    result = reidkit_cli("extract", "--weights", world["weights"], "--images", world["data"] / MARKET / "query",
                         "--output", blocker / "features.npz", cwd=world["folder"])
    one_error_line(result, str(blocker))
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("error, fragments", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x/config.yaml"),
     ["/runs/x/config.yaml: No space left on device", "free some space"]),
    (OSError(errno.EROFS, "Read-only file system", "/ro/run"), ["/ro/run: Read-only file system"]),
    (PermissionError(errno.EACCES, "Permission denied", "/srv/run/results.json"), ["/srv/run/results.json"]),
])
def test_file_system_errors_are_one_line(world, monkeypatch, capsys, error, fragments):
    from reidkit.cli import main
    from reidkit.engine import launch

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(launch, "train", fail)
    assert main(["train", "--config", str(world["config"])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reidkit: error: ")
    assert all(f in lines[0] for f in fragments), lines[0]


def test_full_disk_while_writing_names_the_file(world, tmp_path, monkeypatch, capsys):
    """A write through an open handle fails without a file name (ENOSPC): the atomic writer adds the target's."""
    import os

    from reidkit.cli import main
    from reidkit.engine import launch
    from reidkit.utils.io import atomic_write_json

    target = tmp_path / "run" / "results.json"

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    def train(*args, **kwargs):
        monkeypatch.setattr(os, "fsync", full_disk)
        atomic_write_json(target, {"mAP": 0.5})

    monkeypatch.setattr(launch, "train", train)
    assert main(["train", "--config", str(world["config"])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"reidkit: error: {target}: No space left on device; free some space or choose another folder"]
    assert not target.exists() and not list(target.parent.iterdir())  # no half-written file, no temporary


def test_a_bug_still_shows_its_traceback(world, monkeypatch):
    from reidkit.cli import main
    from reidkit.engine import launch

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(launch, "train", bug)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--config", str(world["config"])])


# -------------------------------------------------------------------------------------- post-processing


@pytest.fixture(scope="module")
def features(world) -> dict[str, Path]:
    folder = world["folder"] / "post"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    good = {"query_f": rng.normal(size=(4, 8)).astype(np.float32),
            "gallery_f": rng.normal(size=(6, 8)).astype(np.float32),
            "gallery_name": np.asarray([f"g{i}.jpg" for i in range(6)])}
    np.savez(folder / "good.npz", **good)
    nan = {**good, "query_f": good["query_f"].copy()}
    nan["query_f"][2, 1] = np.nan
    np.savez(folder / "nan.npz", **nan)
    np.savez(folder / "strings.npz", query_f=np.asarray(["a", "b"]), gallery_f=good["gallery_f"])
    np.savez(folder / "empty.npz", query_f=np.zeros((0, 8), np.float32), gallery_f=good["gallery_f"])
    np.savez(folder / "objects.npz", query_f=np.asarray([{"x": 1}], dtype=object), gallery_f=good["gallery_f"])
    (folder / "garbage.npz").write_bytes(b"\x00garbage" * 40)
    (folder / "garbage.mat").write_bytes(b"MATLAB? no" * 40)
    np.savez(folder / "cams.npz", query_cam=np.arange(3), gallery_cam=np.arange(6))
    (folder / "tracks.txt").write_bytes("g0.jpg g1.jpg caf\xe9\n".encode("latin-1"))
    return {name: folder / f"{name}.npz" for name in ("good", "nan", "strings", "empty", "objects", "garbage",
                                                       "cams")} | {"mat": folder / "garbage.mat",
                                                                   "tracks": folder / "tracks.txt"}


@pytest.mark.parametrize("flags, fragment", [
    (["--topk", "0"], "--topk 0: expected a value >= 1"),
    (["--topk", "-5"], "--topk -5"),
    (["--k1", "0"], "--k1 0"),
    (["--lambda-value", "1.5"], "--lambda-value 1.5"),
    (["--qe-eps", "nan"], "--qe-eps nan: expected a finite number"),
    (["--suppression-steps", "-1"], "--suppression-steps -1"),
])
def test_postprocess_numbers_are_checked(world, features, tmp_path, capsys, flags, fragment):
    run = reidkit_cli if flags == ["--topk", "0"] else lambda *a, cwd: reidkit_main(capsys, *a)
    result = run("postprocess", features["good"], "-o", tmp_path / "track2.txt", *flags, cwd=world["folder"])
    one_error_line(result, fragment)
    assert not (tmp_path / "track2.txt").exists()


@pytest.mark.parametrize("name, extra, fragment", [
    ("garbage", [], "is not a readable .npz feature file"),
    ("mat", [], "is not a readable .mat feature file"),
    ("objects", [], "never loaded"),
    ("nan", [], "query_f holds NaN or infinite values"),
    ("strings", [], "query_f must hold numbers"),
    ("empty", [], "query_f must be a [N, D] matrix"),
    ("good", ["--camera-predictions", "cams"], "3 query_cam entries"),
    ("good", ["--tracks", "tracks"], "not UTF-8"),
])
def test_malformed_postprocess_inputs_are_one_line(world, features, tmp_path, capsys, name, extra, fragment):
    extra = [features.get(a, a) for a in extra]
    run = reidkit_cli if name == "garbage" else lambda *a, cwd: reidkit_main(capsys, *a)
    result = run("postprocess", features[name], "-o", tmp_path / "track2.txt", *extra, cwd=world["folder"])
    one_error_line(result, fragment)


# ----------------------------------------------------------------------------- inputs kept, not mangled


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from reidkit.data import read_image

    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(64, 32) * 32).astype(np.uint16)  # 0 .. 65504
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = np.asarray(read_image(tmp_path / "deep.png"))
    np.testing.assert_allclose(rgb[..., 0], ramp / 257.0, atol=0.5 + 1e-9)
    assert (rgb == 255).mean() < 0.01  # Pillow's own conversion made ~99% of it white


def test_excel_csv_with_a_byte_order_mark_is_read(world, tmp_path):
    from reidkit.data import build_dataset

    rows = ["path,pid,camid,split"]
    for subset, folder in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        for path in sorted((world["data"] / MARKET / folder).glob("*.jpg")):
            pid, cam = int(path.name[:4]), int(path.name[6]) - 1
            if pid > 0:
                rows.append(f"{path},{pid},{cam},{subset}")
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes("\r\n".join(rows).encode("utf-8-sig"))
    dataset = build_dataset("custom", csv_path)
    assert len(dataset.train) + len(dataset.query) + len(dataset.gallery) == len(rows) - 1


def test_tampered_gallery_index_is_one_clear_error(tmp_path):
    from reidkit.errors import ReidkitError
    from reidkit.retrieval import GalleryIndex

    index = GalleryIndex.from_features(np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32))
    index.save(tmp_path / "gallery.index")
    with np.load(tmp_path / "gallery.index") as data:
        parts = dict(data)
    tampered = {
        "bytes": {**parts, "index": parts["index"][: len(parts["index"]) // 2]},
        "ids": {**parts, "ids": parts["ids"][:5]},
        "meta": {**parts, "meta": np.frombuffer(b"[1, 2]", np.uint8)},
        "dim": {**parts, "meta": np.frombuffer(bytes(parts["meta"]).replace(b'"dim": 16', b'"dim": 8'), np.uint8)},
    }
    for name, content in tampered.items():
        with open(tmp_path / f"{name}.index", "wb") as handle:
            np.savez(handle, **content)
        with pytest.raises(ReidkitError, match="is not a reidkit gallery index, or a damaged one"):
            GalleryIndex.load(tmp_path / f"{name}.index")
    assert len(GalleryIndex.load(tmp_path / "gallery.index")) == 20


def test_collapsed_model_is_reported_and_scored_by_no_gallery_order():
    """Constant features (a collapsed model): a warning, the pessimistic mAP whatever the gallery order (before,
    a gallery listing the matches first scored mAP 1), and re-ranking skipped instead of failing the run."""
    import torch

    from reidkit.engine.evaluator import Features, evaluate_features

    rng = np.random.default_rng(1)
    q_pids, g_pids = rng.integers(0, 5, 12), np.repeat(np.arange(5), 6)
    query = Features(torch.ones(12, 8), q_pids, np.zeros(12, np.int64))
    results = []
    for order in (np.argsort(g_pids != q_pids[0], kind="stable"), rng.permutation(30), rng.permutation(30)):
        gallery = Features(torch.ones(30, 8), g_pids[order], np.ones(30, np.int64))
        with pytest.warns(UserWarning) as caught:
            results.append(evaluate_features(query, gallery, rerank=True, k1=5, k2=3, max_rank=10))
        messages = [str(w.message) for w in caught]
        assert any(m.startswith("features collapsed: 100% of query rows") for m in messages)
        assert any(m.startswith("re-ranking skipped") for m in messages)
    assert all(r.reranked is None for r in results)
    assert len({round(r.metrics["mAP"], 12) for r in results}) == 1 and results[0].metrics["Rank-1"] == 0.0
