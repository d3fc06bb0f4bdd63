"""Atomic file writes: a crash or Ctrl-C mid-write never leaves a half-written file in place.

The temporary file is `.<name>.reidkit-<pid>-<random>.tmp` beside the target. An exception or Ctrl-C removes
it; a process killed outright (kill -9, power loss) cannot, so the first atomic write of each process into a
folder removes the temporary files there whose writing process no longer runs on this machine (a resumed run's
first checkpoint clears what the killed run left). The finished file gets the mode a plain open() would give
it: an existing file's mode, else 0o666 less the umask (mkstemp alone would leave every output 0600).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

_TEMPORARY = re.compile(r"\..+\.reidkit-(\d+)-[a-z0-9_]+\.tmp")
_swept_folders: set[str] = set()


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it races other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Give a file or folder made by tempfile (0600 / 0700) the mode open() / mkdir() would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: another user's process, alive
        return False
    return False


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that atomic writes into `folder` left behind when their process was killed
    (its pid, in the name, no longer runs). Returns what was removed."""
    if os.name != "posix":
        return []  # os.kill(pid, 0) is no liveness test elsewhere
    removed = []
    for candidate in Path(folder).iterdir():
        match = _TEMPORARY.fullmatch(candidate.name)
        if match and int(match.group(1)) != os.getpid() and _process_gone(int(match.group(1))):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                candidate.unlink()
                removed.append(candidate)
    return removed


def _sweep_once(folder: Path) -> None:
    # Once per process and folder: a folder of thousands of pictures is not listed once per picture.
    key = os.fspath(folder.resolve())
    if key not in _swept_folders:
        _swept_folders.add(key)
        remove_stale_temporaries(folder)


def _final_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path` (see the module notes
    for the temporary file's name, its clean-up and the final file mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.reidkit-{os.getpid()}-", suffix=".tmp")
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = os.fspath(path)  # a write through the handle (a full disk) names no file
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
