"""`reidkit index` / `reidkit search` end to end with a tiny real checkpoint on drawn crops (SQLite + FAISS):
results equal exact brute force over the Embedder's features, filters, re-ranking, resume (also after kill -9),
removal, the fingerprint refusal, unreadable images, and one clear line for each bad input."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gallery_helpers import draw_crops
from reidkit.cli import main
from reidkit.gallery import Gallery
from reidkit.gallery.search import CELL_SIZE
from reidkit.gallery.sqlite_faiss import DB_NAME
from reidkit.visualize.grid import grid_size


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(capsys, *argv) -> str:
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("reidkit: error: "), err
    return lines[0]


def table_paths(out: str) -> list[str]:
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    return [row[-1] for row in rows]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, checkpoint, crops):
    """The 40 crops indexed with the Market pattern; tests that change a gallery work on a copy."""
    db = tmp_path_factory.mktemp("indexed") / "gallery"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["index", "--weights", str(checkpoint(0)), "--images", str(crops), "--db", str(db), "--pattern",
                     "market1501", "--batch", "7", "--no-progress", "--device", "cpu"])
    assert code == 0 and "indexed 40 new images" in out.getvalue() and "gallery size 40" in out.getvalue()
    return db


@pytest.fixture(scope="module")
def exact_ranking(checkpoint, crops):
    """exact_ranking(query, keep) -> [(path, cosine)] of the crops that `keep`, by brute force over the Embedder's
    features of every crop, best first."""
    from reidkit.deploy.embedder import Embedder

    embedder = Embedder.load(checkpoint(0))
    files = sorted(crops.rglob("*.jpg"))
    features = embedder.embed(files)

    def rank(query: Path, keep=lambda path: True) -> list[tuple[str, float]]:
        scores = features @ embedder.embed([query])[0]
        order = [i for i in np.argsort(-scores, kind="stable") if keep(files[i])]
        return [(files[i].relative_to(crops).as_posix(), float(scores[i])) for i in order]

    return rank


def test_search_equals_brute_force_and_draws_the_ranked_list(indexed, tmp_path, capsys, exact_ranking):
    query = tmp_path / "query.jpg"
    draw_crops(tmp_path / "q", 4, seed=5)[2].rename(query)
    code, out, _ = run(capsys, "search", "--db", indexed, "--query", query, "--topk", 6, "--output",
                       tmp_path / "ranked.png", "--device", "cpu")
    assert code == 0
    want = exact_ranking(query)[:6]
    assert table_paths(out) == [path for path, _ in want]
    scores = [float(line.split()[1]) for line in out.splitlines() if line.strip()[:1].isdigit()]
    np.testing.assert_allclose(scores, [s for _, s in want], atol=2e-3)  # the table prints 3 decimals
    with Image.open(tmp_path / "ranked.png") as image:
        assert image.size == grid_size(6, 1, CELL_SIZE)
    code, out, _ = run(capsys, "search", "--db", indexed, "--query", query, "--topk", 5, "--camera", 2,
                       "--output", tmp_path / "c2.jpg")
    assert table_paths(out) == [p for p, _ in exact_ranking(query, lambda p: "_c2s" in p.name)][:5]
    code, out, _ = run(capsys, "search", "--db", indexed, "--query", query, "--topk", 30, "--exclude-camera", 1,
                       "--exclude-camera", 3, "--output", tmp_path / "x.jpg")
    assert len(table_paths(out)) == 13 and all("_c2s" in p for p in table_paths(out))


def test_grid_borders_say_same_person_when_the_pattern_names_people(indexed, tmp_path, capsys, crops):
    query = next(crops.rglob("0003_c1s1_*.jpg"))
    code, out, _ = run(capsys, "search", "--db", indexed, "--query", query, "--topk", 3, "--output",
                       tmp_path / "r.png")
    paths = table_paths(out)
    assert paths[0] == query.relative_to(crops).as_posix()  # the query itself is in the gallery
    with Image.open(tmp_path / "r.png") as image:
        border = image.convert("RGB").getpixel((CELL_SIZE[1] + 100 + 1, 1))  # rank 1's top-left border pixel
    assert border == (0, 255, 0)


def test_rerank_reorders_the_candidates(indexed, tmp_path, capsys, crops):
    query = next(crops.rglob("0005_c2s1_*.jpg"))
    code, out, _ = run(capsys, "search", "--db", indexed, "--query", query, "--topk", 40, "--rerank",
                       "--output", tmp_path / "r.jpg")
    assert code == 0 and "rerank" in out.splitlines()[0]
    distances = [float(line.split()[2]) for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert distances == sorted(distances) and sorted(table_paths(out)) == sorted(
        p.relative_to(crops).as_posix() for p in crops.rglob("*.jpg"))


def test_rerun_skips_everything_and_remove_deletes_by_glob(indexed, tmp_path, capsys, checkpoint, crops):
    indexed = Path(shutil.copytree(indexed, tmp_path / "gallery"))
    code, out, _ = run(capsys, "index", "--weights", checkpoint(0), "--images", crops, "--db", indexed,
                       "--no-progress")
    assert code == 0 and "indexed 0 new images" in out and "40 already there" in out
    code, out, _ = run(capsys, "index", "--db", indexed, "--remove", "day1/*")
    assert code == 0 and "removed 20 items" in out and "gallery size 20" in out
    with Gallery(indexed) as gallery:
        assert len(gallery) == 20 and gallery.known_hashes([]) == set()


def test_csv_metadata_and_time_window(tmp_path, capsys, checkpoint, crops):
    files = sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.jpg"))
    lines = ["path,camera,timestamp,track,colour"] + [f"{path},{i % 3},2024-05-01T10:{i:02d}:00,{i // 4},"
                                                      f"{'red' if i % 2 else 'blue'}" for i, path in enumerate(files)]
    (tmp_path / "meta.csv").write_text("\ufeff" + "\n".join(lines[:-1]) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "index", "--weights", checkpoint(0), "--images", crops, "--db", tmp_path / "g",
                       "--meta", tmp_path / "meta.csv", "--no-progress")
    assert code == 0 and "1 images had no metadata" in out
    code, out, _ = run(capsys, "search", "--db", tmp_path / "g", "--query", crops / files[0], "--topk", 40,
                       "--since", "2024-05-01T10:05:00", "--until", "2024-05-01 10:09:59", "--output",
                       tmp_path / "t.jpg")
    assert sorted(table_paths(out)) == files[5:10] and "2024-05-01 10:05:00" in out
    with Gallery(tmp_path / "g") as gallery:
        item = gallery.get(gallery.search(gallery.vectors([1])[0], 1)[0].id)
        assert item.tags["colour"] in ("red", "blue") and item.track is not None


def test_unreadable_images_are_listed_and_skipped(tmp_path, capsys, checkpoint, crops):
    folder = tmp_path / "crops"
    shutil.copytree(crops, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "day0" / "empty.png").write_bytes(b"")
    code, out, _ = run(capsys, "index", "--weights", checkpoint(0), "--images", folder, "--db", tmp_path / "g",
                       "--no-progress")
    assert code == 0 and "indexed 40 new images" in out and "2 unreadable" in out
    assert "  broken.jpg: cannot decode" in out and "  day0/empty.png: cannot decode" in out


def test_another_model_is_refused_naming_both(indexed, tmp_path, capsys, checkpoint, crops):
    line = one_error_line(capsys, "index", "--weights", checkpoint(1), "--images", crops, "--db", indexed)
    assert "holds features of model 'top_db_net' (weights sha256" in line and "refusing to add with features of" in line
    first, second = line.split("refusing")
    assert first.split("sha256 ")[1][:12] != second.split("sha256 ")[1][:12]
    line = one_error_line(capsys, "search", "--db", indexed, "--query", next(crops.rglob("*.jpg")), "--weights",
                          checkpoint(1))
    assert "refusing to search with features of" in line


def test_each_bad_input_gets_one_line(indexed, tmp_path, capsys, checkpoint, crops):
    query = next(crops.rglob("*.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"GIF89a broken")
    assert "cannot decode query image" in one_error_line(capsys, "search", "--db", indexed, "--query",
                                                         tmp_path / "bad.jpg")
    assert "cannot read query image" in one_error_line(capsys, "search", "--db", indexed, "--query",
                                                       tmp_path / "none.jpg")
    for topk in (0, 41):
        assert f"topk={topk}: expected an integer from 1 to the gallery size (40)" in one_error_line(
            capsys, "search", "--db", indexed, "--query", query, "--topk", topk)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"\x00" * 1000)
    assert "is not a reidkit gallery" in one_error_line(capsys, "search", "--db", tmp_path / "junk", "--query", query)
    (tmp_path / "plain.sqlite").write_text("x")
    assert "is a file; expected a gallery folder" in one_error_line(capsys, "search", "--db", tmp_path / "plain.sqlite",
                                                                    "--query", query)
    assert "no gallery at" in one_error_line(capsys, "search", "--db", tmp_path / "nothing", "--query", query)
    assert "needs --weights and --images" in one_error_line(capsys, "index", "--db", indexed)
    assert "--remove deletes items" in one_error_line(capsys, "index", "--db", indexed, "--remove", "*",
                                                      "--images", crops)
    assert "unknown image type '.txt'" in one_error_line(capsys, "search", "--db", indexed, "--query", query,
                                                         "--output", tmp_path / "r.txt")
    assert "--batch 0: expected an integer >= 1" in one_error_line(capsys, "index", "--weights", checkpoint(0),
                                                                   "--images", crops, "--db", indexed, "--batch", 0)
    assert "cannot read 'soon' as a time" in one_error_line(capsys, "search", "--db", indexed, "--query", query,
                                                            "--since", "soon")
    assert "--threads 0: expected an integer >= 1" in one_error_line(capsys, "search", "--db", indexed, "--query",
                                                                     query, "--threads", 0)


def test_empty_gallery(tmp_path, capsys, checkpoint):
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "broken.jpg").write_bytes(b"nothing")
    code, out, _ = run(capsys, "index", "--weights", checkpoint(0), "--images", tmp_path / "crops", "--db",
                       tmp_path / "g", "--no-progress")
    assert code == 0 and "gallery size 0" in out
    query = draw_crops(tmp_path / "q", 1)[0]
    assert "is empty; add images first" in one_error_line(capsys, "search", "--db", tmp_path / "g", "--query", query)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db / DB_NAME}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_loses_at_most_the_batch_in_flight_and_a_rerun_completes(tmp_path, checkpoint):
    folder = tmp_path / "crops"
    files = draw_crops(folder, 240, seed=2)
    db = tmp_path / "g"
    command = [sys.executable, "-m", "reidkit", "index", "--weights", str(checkpoint(0)), "--images", str(folder),
               "--db", str(db), "--batch", "2", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _count(db) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    committed = _count(db)
    assert 6 <= committed < 240 and committed % 2 == 0  # whole batches only
    with sqlite3.connect(db / DB_NAME) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"indexed {240 - committed} new images" in done.stdout and f"{committed} already there" in done.stdout
    with sqlite3.connect(db / DB_NAME) as con:
        paths = [p for (p,) in con.execute("SELECT path FROM items")]
        hashes = {h for (h,) in con.execute("SELECT content_hash FROM items")}
    assert sorted(paths) == sorted(p.relative_to(folder).as_posix() for p in files) and len(hashes) == 240


def test_torchrun_two_processes_shard_and_rank_0_writes(tmp_path, checkpoint, crops):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "reidkit", "index", "--weights", str(checkpoint(0)), "--images", str(crops), "--db",
               str(tmp_path / "g"), "--batch", "4", "--no-progress", "--device", "cpu", "--pattern", "market1501"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("indexed 40 new images") == 1  # rank 0 alone reports
    single = tmp_path / "single"
    assert main(["index", "--weights", str(checkpoint(0)), "--images", str(crops), "--db", str(single),
                 "--no-progress", "--device", "cpu"]) == 0
    with Gallery(tmp_path / "g") as both, Gallery(single) as one:
        assert len(both) == len(one) == 40
        by_path = {}
        for gallery in (both, one):
            items = gallery.items(range(1, 41))
            vectors = gallery.vectors([it.id for it in items])
            by_path[gallery] = {it.path: v for it, v in zip(items, vectors)}
        assert by_path[both].keys() == by_path[one].keys()
        for path, vector in by_path[both].items():
            np.testing.assert_allclose(vector, by_path[one][path], atol=1e-5)
        assert both.get(1).camera is not None and both.notes("pattern") == "market1501"
