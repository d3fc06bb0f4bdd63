"""`reidkit serve` as a command: a real process on a free port that answers and stops on Ctrl-C, and the
one-line errors of a missing gallery, a taken port and another model's gallery."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import httpx

from reidkit.cli import main


def _one_error_line(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("reidkit: error: "), lines
    return lines[0]


def test_serve_runs_answers_and_stops_on_ctrl_c(indexed):
    command = [sys.executable, "-m", "reidkit", "serve", "--db", str(indexed[0]), "--port", "0", "--no-access-log"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found and "40 items" in line, line + proc.stderr.read() if proc.poll() is not None else line
        health = httpx.get(f"http://127.0.0.1:{found.group(1)}/api/health", timeout=30)
        assert health.status_code == 200 and health.json()["gallery_size"] == 40
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "warning" not in err


def test_serve_errors_are_one_line(capsys, tmp_path, indexed, serve_checkpoint):
    assert "no gallery at" in _one_error_line(capsys, "serve", "--db", tmp_path / "nothing")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in _one_error_line(capsys, "serve", "--db", indexed[0],
                                                                       "--port", port)
    assert "--port 70000" in _one_error_line(capsys, "serve", "--db", indexed[0], "--port", 70000)


def test_serve_refuses_another_models_gallery(capsys, indexed, tmp_path):
    from gallery_helpers import write_tiny_checkpoint

    other = write_tiny_checkpoint(tmp_path / "other.pth", 1)
    line = _one_error_line(capsys, "serve", "--db", indexed[0], "--weights", other, "--port", 0)
    assert "refusing to serve" in line
