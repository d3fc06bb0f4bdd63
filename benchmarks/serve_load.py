"""Load test of `reidkit serve`: N concurrent clients searching by item id for T seconds against a live server on
127.0.0.1 over a 100,000-item gallery; requests/s, latency p50 / p99, errors and the server's memory.

    .venv/bin/python benchmarks/serve_load.py --clients 8 --seconds 300            # the target run
    .venv/bin/python benchmarks/serve_load.py --clients 2 --seconds 20 --items 20000 --mode upload

What it does. In --work (a temporary folder by default, removed at the end) it writes a small real reidkit
checkpoint (Top-DB-Net on ResNet-18, 128x64 input, --dim features, untrained: the search cost does not depend on
the weights), and fills a gallery folder (SQLite + FAISS, the default backend) with --items re-ID-like synthetic
features (benchmarks/eval_speed.py `synthetic_gallery`: identities of 20 images in appearance groups) added
straight through the Gallery API, each item with a camera 1..6 and a time; no image is embedded. It builds the
index (exact below 100,000 items, IVF at 100,000 and above, as `reidkit index` would; --index exact forces exact
search), then starts `reidkit serve` on 127.0.0.1 at a free port as a subprocess and waits for /api/health.
After a warm-up (--warmup requests per client) it reads the server's RSS, runs the clients (threads with one
httpx connection each, POST /api/search with a random item id and topk 20; --mode upload posts a drawn person
crop instead, which the server embeds) until T seconds have passed, sampling RSS every 5 s, reads RSS again, and
stops the server. Every answer that is not 200 counts as an error. The clients run on the same machine and take
CPU from the server; the load average before and after is printed.

Target (issue 17): >= 50 searches/s by item id with p99 < 200 ms at 8 clients, 0 errors, no memory growth over
5 minutes.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import synthetic_gallery  # noqa: E402  (the re-ID-like generator, shared)

T0 = 1_714_557_600.0
CAMERAS = 6
TARGETS = {"requests_per_s": 50.0, "p99_ms": 200.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the timed run (default 300)")
    parser.add_argument("--items", type=int, default=100_000, help="gallery size (default 100,000)")
    parser.add_argument("--dim", type=int, default=512, help="feature size (default 512)")
    parser.add_argument("--topk", type=int, default=20, help="matches per search (default 20)")
    parser.add_argument("--mode", choices=("item", "upload"), default="item", help="search by item id or upload")
    parser.add_argument("--index", choices=("auto", "exact"), default="auto",
                        help="auto: exact below 100,000 items, IVF above (the default); exact: always exact")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per client first (default 10)")
    parser.add_argument("--work", help="folder for the gallery and model (default: a temporary one, removed)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.items < args.topk + 1:
        parser.error("--clients >= 1, --seconds > 0 and --items > --topk expected")
    return args


# ------------------------------------------------------------------------------------------------ the setup
def write_model(folder: Path, dim: int) -> Path:
    import torch

    from reidkit.config import config_from_dict
    from reidkit.engine.checkpoint import save_checkpoint
    from reidkit.models import build_model

    torch.manual_seed(0)
    options = {"global_dim": dim // 2, "drop_dim": dim - dim // 2}
    model = build_model("top_db_net", 10, backbone="resnet18", **options)
    cfg = config_from_dict({"model": {"name": "top_db_net", "backbone": "resnet18", "pretrained": None,
                                      "options": options}, "data": {"height": 128, "width": 64}})
    return save_checkpoint(folder / "model.pth", model, epoch=1, config=cfg.to_dict(), metrics={})


def fill_gallery(db: Path, checkpoint: Path, args: argparse.Namespace) -> dict:
    import numpy as np

    from reidkit.deploy.embedder import Embedder
    from reidkit.gallery import Gallery, Item
    from reidkit.retrieval import auto_kind

    rng = np.random.default_rng(args.seed)
    vectors = synthetic_gallery(rng, args.items, {}, dim=args.dim, nq=1)[0]
    options = {"exact_limit": args.items + 1} if args.index == "exact" else {}
    started = time.perf_counter()
    with Gallery(db, **options) as gallery:
        gallery.set_fingerprint(Embedder.load(checkpoint).fingerprint)
        gallery.set_note("weights", str(checkpoint))
        for start in range(0, args.items, 10_000):
            stop = min(start + 10_000, args.items)
            items = [Item(f"synthetic/{i:06d}.jpg", camera=1 + i % CAMERAS, timestamp=T0 + i, pid=i // 20)
                     for i in range(start, stop)]
            gallery.add(vectors[start:stop], items)
        added = time.perf_counter() - started
        gallery.build_index()
        kind = auto_kind(len(gallery), gallery.setting("exact_limit"))  # what the server will search with
    return {"insert_s": round(added, 1), "index_s": round(time.perf_counter() - started - added, 1), "kind": kind}


def start_server(db: Path, work: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "reidkit", "serve", "--db", str(db), "--port", "0", "--no-access-log"]
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{(work / 'server.log').read_text()[-2000:]}")
    return proc, found.group(0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ------------------------------------------------------------------------------------------------ the clients
def query_crop() -> bytes:
    import numpy as np

    from reidkit.data.synthetic import Camera, Identity, draw_person

    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    draw_person(Identity.sample(rng), Camera.sample(0, rng), rng, size=(128, 64)).save(buffer, format="JPEG")
    return buffer.getvalue()


class Client(threading.Thread):
    """One connection searching until `deadline`; latencies (s) of its answers and its error count."""

    def __init__(self, url: str, args: argparse.Namespace, seed: int, crop: bytes | None,
                 go: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.args, self.crop, self.go = url, args, crop, go
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.deadline = 0.0
        self.warmed = threading.Event()

    def request(self, http) -> tuple[float, int]:
        data = {"topk": str(self.args.topk)}
        files = None
        if self.crop is None:
            data["item_id"] = str(self.rng.randint(1, self.args.items))
        else:
            files = {"image": ("query.jpg", self.crop, "image/jpeg")}
        started = time.perf_counter()
        answer = http.post(f"{self.url}/api/search", data=data, files=files)
        return time.perf_counter() - started, answer.status_code

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as http:
            for _ in range(self.args.warmup):
                self.request(http)
            self.warmed.set()
            self.go.wait()
            while time.perf_counter() < self.deadline:
                try:
                    seconds, status = self.request(http)
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                    continue
                self.latencies.append(seconds)
                if status != 200:
                    self.errors.append(str(status))


def run_clients(url: str, proc: subprocess.Popen, args: argparse.Namespace) -> dict:
    import numpy as np

    crop = query_crop() if args.mode == "upload" else None
    go = threading.Event()
    clients = [Client(url, args, args.seed + i, crop, go) for i in range(args.clients)]
    for client in clients:
        client.start()
    for client in clients:
        client.warmed.wait(timeout=300)
    rss_before = rss_mb(proc.pid)
    started = time.perf_counter()
    for client in clients:
        client.deadline = started + args.seconds
    go.set()
    samples = []
    while any(client.is_alive() for client in clients):
        samples.append(round(rss_mb(proc.pid), 1))
        time.sleep(min(5.0, max(0.1, started + args.seconds - time.perf_counter())))
    elapsed = time.perf_counter() - started
    latencies = np.array([s for client in clients for s in client.latencies]) * 1000
    errors = [e for client in clients for e in client.errors]
    return {"requests": int(len(latencies)), "seconds": round(elapsed, 1),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
            "max_ms": round(float(latencies.max()), 1) if len(latencies) else None,
            "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_mb(proc.pid), 1),
            "rss_max_mb": max(samples) if samples else None, "rss_samples_mb": samples}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="serve_load_"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    try:
        print(f"gallery: {args.items:,} synthetic {args.dim}-d features into {work / 'gallery'} ...", flush=True)
        setup = fill_gallery(work / "gallery", write_model(work, args.dim), args)
        print(f"  inserted in {setup['insert_s']} s, {setup['kind']} index built in {setup['index_s']} s", flush=True)
        proc, url = start_server(work / "gallery", work)
        try:
            print(f"server {url} (pid {proc.pid}); {args.clients} clients x {args.seconds:g} s, mode {args.mode}",
                  flush=True)
            result = run_clients(url, proc, args)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": " ".join(sys.argv),
              "clients": args.clients, "items": args.items, "dim": args.dim, "mode": args.mode, **setup, **result,
              "load_before": load_before, "load_after": load_average(), "cpus": os.cpu_count()}
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def print_report(r: dict) -> None:
    met = (r["errors"] == 0 and r["requests_per_s"] >= TARGETS["requests_per_s"]
           and (r["p99_ms"] or 1e9) < TARGETS["p99_ms"])
    print(f"\n| clients | gallery | index | mode | seconds | requests | req/s | p50 ms | p99 ms | max ms | errors "
          f"| server RSS before -> after (max) MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {r['clients']} | {r['items']:,} x {r['dim']} | {r['kind']} | {r['mode']} | {r['seconds']} | "
          f"{r['requests']:,} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} "
          f"| {r['rss_before_mb']} -> {r['rss_after_mb']} ({r['rss_max_mb']}) |")
    print(f"\nload average before {r['load_before']}, after {r['load_after']} ({r['cpus']} CPUs); {r['date']}")
    if r["mode"] == "item":
        print(f"target (>= {TARGETS['requests_per_s']:g} req/s, p99 < {TARGETS['p99_ms']:g} ms, 0 errors): "
              f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
