"""The gallery database at scale: SQLite + FAISS (the default) and Milvus (through Milvus Lite), side by side.

    .venv/bin/python benchmarks/gallery_scale.py                                   # 100k and 1M x 512, both
    .venv/bin/python benchmarks/gallery_scale.py --sizes 100000 --backends milvus-lite --milvus-queries 50

What it does. For each size it makes the re-ID-like synthetic features of benchmarks/eval_speed.py
(`synthetic_gallery`: L2-normalised, identities in appearance groups, 20 images each; 1,000 queries of gallery
identities), gives every item a camera 1..6 and a time, and computes the exact top-10 of every query by brute
force, without and with a camera filter (each query keeps one random camera, ~1/6 of the gallery). Then, for
each backend, in a fresh subprocess (so that its peak memory is its own; Milvus Lite serves in-process, so its
server is counted too): insert the features with their items in batches of --batch (items/s; the features are
given, as the target says), build the index (`Gallery.build_index`: SQLite reads the vectors back and builds the
FAISS index, exact below 100,000 items and IVF above, and saves it; Milvus flushes and builds its index), reopen
the gallery and time the first query (loading the index) and the first filtered one (SQLite reads the filter
columns), then search the queries one at a time (single-query
latency p50 / p99 and queries/s, recall@10 against the exact top-10), without and with the camera filter. Disk:
the gallery folder. Memory: peak RSS of the child and the part above the generated features.

Milvus Lite (milvus-lite 3.x) is a pure-Python server: its queries take a large fraction of a second, so it is
timed on --milvus-queries queries (default 100) and its 1M run can be skipped with --milvus-sizes.
Times are wall-clock on a shared machine: the load average before and after is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import synthetic_gallery  # noqa: E402  (the re-ID-like generator, shared)

DIM, PER_ID, NUM_QUERIES, CAMERAS, TOPK = 512, 20, 1000, 6, 10
TARGETS = {"recall": 0.95, "p99_ms": 20.0, "insert_per_s": 5000.0}
URIS = {"sqlite": "gallery", "milvus-lite": "gallery.db"}


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def problem(size: int):
    """(gallery, queries, cameras [size], query cameras [NUM_QUERIES], times [size]), the same in every process."""
    import numpy as np

    gallery, queries, _, _ = synthetic_gallery(np.random.default_rng(0), size, {}, DIM, PER_ID, NUM_QUERIES)
    rng = np.random.default_rng(1)
    cameras = rng.integers(1, CAMERAS + 1, size)
    query_cameras = rng.integers(1, CAMERAS + 1, NUM_QUERIES)
    times = 1_714_557_600.0 + np.arange(size, dtype=np.float64)
    return gallery, queries, cameras, query_cameras, times


def exact_top10(work: Path, size: int) -> dict:
    """Brute-force top-10 gallery rows of every query, unfiltered and within the query's camera."""
    import numpy as np

    gallery, queries, cameras, query_cameras, _ = problem(size)
    best = np.full((NUM_QUERIES, 2, TOPK), -np.inf, np.float32)
    rows = np.zeros((NUM_QUERIES, 2, TOPK), np.int64)
    for start in range(0, size, 50_000):
        block = queries @ gallery[start:start + 50_000].T
        for which, scores in ((0, block), (1, np.where(cameras[start:start + 50_000] == query_cameras[:, None],
                                                       block, -np.inf))):
            take = np.argpartition(-scores, TOPK, axis=1)[:, :TOPK]
            merged = np.concatenate([best[:, which], np.take_along_axis(scores, take, 1)], axis=1)
            merged_rows = np.concatenate([rows[:, which], take + start], axis=1)
            keep = np.argsort(-merged, axis=1, kind="stable")[:, :TOPK]
            best[:, which] = np.take_along_axis(merged, keep, 1)
            rows[:, which] = np.take_along_axis(merged_rows, keep, 1)
    np.savez(work / f"exact_{size}.npz", rows=rows)
    return {"size": size}


def _items(cameras, times, start: int, stop: int):
    from reidkit.gallery import Item

    return [Item(f"cam{cameras[i]}/{i:07d}.jpg", camera=int(cameras[i]), timestamp=float(times[i]),
                 content_hash=f"{i:064x}") for i in range(start, stop)]


def _latency(gallery, queries, cameras_of_queries, exact_rows, count: int, filtered: bool) -> dict:
    import numpy as np

    times, recalls = [], []
    for q in range(count):
        start = time.perf_counter()
        hits = gallery.search(queries[q], TOPK, camera=int(cameras_of_queries[q]) if filtered else None)
        times.append(time.perf_counter() - start)
        got = {_row(h) for h in hits}
        recalls.append(len(got & set(exact_rows[q].tolist())) / TOPK)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "qps": count / float(np.sum(times)), "recall": float(np.mean(recalls)), "queries": count}


def measure(work: Path, backend: str, size: int, options: dict) -> dict:
    """Insert, build, reopen and query one backend at one size; see the module doc."""
    import numpy as np

    from reidkit.gallery import Gallery

    gallery_data, queries, cameras, query_cameras, times = problem(size)
    exact = np.load(work / f"exact_{size}.npz")["rows"]
    uri = str(work / f"{backend}_{size}" / URIS[backend])
    shutil.rmtree(Path(uri).parent, ignore_errors=True)
    Path(uri).parent.mkdir(parents=True)
    out: dict = {"backend": backend, "size": size, "base_mb": _rss_mb()}
    gallery = Gallery(uri)
    gallery.set_fingerprint({"model": "synthetic", "feature_dim": DIM})
    start = time.perf_counter()
    for first in range(0, size, options["batch"]):
        stop = min(first + options["batch"], size)
        gallery.add(gallery_data[first:stop], _items(cameras, times, first, stop))
    out["insert_s"] = time.perf_counter() - start
    out["insert_per_s"] = size / out["insert_s"]
    start = time.perf_counter()
    gallery.build_index()
    out["build_s"] = time.perf_counter() - start
    gallery.close()
    start = time.perf_counter()
    gallery = Gallery(uri)
    gallery.search(queries[0], TOPK)
    out["open_first_query_s"] = time.perf_counter() - start
    out["disk_mb"] = sum(p.stat().st_size for p in Path(uri).rglob("*") if p.is_file()) / 2 ** 20 \
        if Path(uri).is_dir() else float("nan")
    start = time.perf_counter()  # SQLite reads the camera / time columns for its filters once: not in the passes
    gallery.search(queries[0], TOPK, camera=int(query_cameras[0]))
    out["first_filtered_query_s"] = time.perf_counter() - start
    count = options["milvus_queries"] if backend == "milvus-lite" else NUM_QUERIES
    out["index"], out["passes"] = _index_kind(gallery, backend, size), []
    for nprobe in options["nprobe"]:
        gallery.set_search_params(nprobe=nprobe)
        out["passes"].append({"nprobe": nprobe,
                              "plain": _latency(gallery, queries, query_cameras, exact[:, 0], count, False),
                              "camera": _latency(gallery, queries, query_cameras, exact[:, 1], count, True)})
    gallery.close()
    out["rss_mb"], out["peak_mb"] = _rss_mb(), _rss_mb("VmHWM")
    shutil.rmtree(Path(uri).parent, ignore_errors=True)
    return out


def _row(hit) -> int:
    """Gallery row of a hit: items are named cam<c>/<row>.jpg."""
    return int(hit.item.path.rsplit("/", 1)[1][:-4])


def _index_kind(gallery, backend: str, size: int) -> str:
    """What the gallery chose for this size (both: exact below 100,000 items, IVF with 4 sqrt(n) lists above)."""
    if backend == "sqlite":
        index = gallery._index
        return f"FAISS IVF{index.nlist}" if index.kind == "ivf" else "FAISS flat"
    kind = gallery._call("describe_index", gallery.collection, "vector")["index_type"]
    return f"{kind} {int(4 * size ** 0.5)}" if kind == "IVF_FLAT" else kind


# ------------------------------------------------------------------------------------------------------ parent
def run_child(task: str, work: Path, size: int, backend: str, options: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", task, "--workdir", str(work), "--child-size",
           str(size), "--child-backend", backend, "--child-options", json.dumps(options)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{task} {backend} {size} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def table(results: list[dict]) -> str:
    """The markdown table of docs/results/gallery.md: one row per nprobe and filter."""
    head = ("| backend | items | index | insert (items/s) | build (s) | open + 1st query (s) | 1st filtered (s) | "
            "disk (MB) | "
            "peak RSS (MB) | above features (MB) | nprobe | filter | queries | p50 (ms) | p99 (ms) | queries/s | "
            "recall@10 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        first = True
        for run in r["passes"]:
            for name in ("plain", "camera"):
                q = run[name]
                cells = [r["backend"], f"{r['size']:,}", r["index"], f"{r['insert_per_s']:,.0f}",
                         f"{r['build_s']:.1f}", f"{r['open_first_query_s']:.2f}",
                         f"{r.get('first_filtered_query_s', float('nan')):.2f}", f"{r['disk_mb']:,.0f}",
                         f"{r['peak_mb']:,.0f}", f"{r['peak_mb'] - r['base_mb']:,.0f}"] if first else [""] * 10
                cells += [str(run["nprobe"]) if "IVF" in r["index"] else "-",
                          "none" if name == "plain" else "camera (1 of 6)", str(q["queries"]), f"{q['p50_ms']:.2f}",
                          f"{q['p99_ms']:.2f}", f"{q['qps']:,.0f}", f"{q['recall']:.3f}"]
                lines.append("| " + " | ".join(cells) + " |")
                first = False
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,milvus-lite")
    parser.add_argument("--milvus-sizes", help="sizes run on Milvus Lite (default: --sizes)")
    parser.add_argument("--milvus-queries", type=int, default=100, help="queries timed on Milvus Lite")
    parser.add_argument("--batch", type=int, default=10_000, help="items per insert")
    parser.add_argument("--nprobe", default="8,32", help="IVF lists probed per query; one timed pass each")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child"), parser.add_argument("--child-size", type=int)
    parser.add_argument("--child-backend"), parser.add_argument("--child-options")
    args = parser.parse_args()
    if args.child:
        work, options = Path(args.workdir), json.loads(args.child_options)
        result = (exact_top10(work, args.child_size) if args.child == "exact"
                  else measure(work, args.child_backend, args.child_size, options))
        print("RESULT " + json.dumps(result), flush=True)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    milvus_sizes = [int(s) for s in args.milvus_sizes.split(",")] if args.milvus_sizes else sizes
    options = {"batch": args.batch, "nprobe": [int(v) for v in args.nprobe.split(",")],
               "milvus_queries": args.milvus_queries}
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gallery_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load before: {uptime()}", flush=True)
    results = []
    for size in sizes:
        run_child("exact", work, size, "-", options)
        for backend in args.backends.split(","):
            if backend == "milvus-lite" and size not in milvus_sizes:
                continue
            started = time.monotonic()
            results.append(run_child("measure", work, size, backend, options))
            print(f"{backend} {size:,}: {time.monotonic() - started:.0f} s  {json.dumps(results[-1])}", flush=True)
    print(f"load after: {uptime()}")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
