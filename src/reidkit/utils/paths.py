"""Output paths that never destroy an input, and output folders renewed without deleting what a user put there."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

from reidkit.errors import ConfigError
from reidkit.utils.io import atomic_write_text

# The list of files a renewed folder holds (written by renew_folder), relative to the folder.
WRITTEN_LIST = ".reidkit-written"


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def refuse_overlap(output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], *, flag: str,
                   folder: bool = False) -> None:
    """ConfigError, before any work, when writing `output` could destroy an input: `output` is one of `inputs`
    ({what it is: path}; None entries are skipped), or lies inside an input folder, or (folder=True: `output`
    is a folder we write into) holds an input."""
    out = _real(output)
    for what, given in inputs.items():
        if given is None:
            continue
        source = _real(given)
        if out == source:
            raise ConfigError(f"{flag} {output} is the {what} ({given}): writing it would destroy that input; "
                              "choose another path (nothing was written)")
        if source.is_dir() and out.is_relative_to(source):
            raise ConfigError(f"{flag} {output} lies inside the {what} ({given}): reidkit does not write into its "
                              "inputs; choose a path outside it (nothing was written)")
        if folder and source.is_relative_to(out):
            raise ConfigError(f"{flag} {output} holds the {what} ({given}): reidkit does not write over its "
                              "inputs; choose another folder (nothing was written)")


def _recorded(folder: Path) -> set[str]:
    try:
        return {line for line in (folder / WRITTEN_LIST).read_text(encoding="utf-8").splitlines() if line}
    except (OSError, UnicodeDecodeError):
        return set()


def _free_name(base: Path) -> Path:
    n = 1
    while os.path.lexists(f"{base}-{n}"):
        n += 1
    return Path(f"{base}-{n}")


def _retire(old: Path, kept_base: Path) -> Path | None:
    """Delete from `old` the files its WRITTEN_LIST names (ours) and the folders left empty; whatever else it
    holds (someone else's) moves, as a folder, to a free kept_base-N, which is returned."""
    ours = _recorded(old) | {WRITTEN_LIST}
    for current, dirs, files in os.walk(old, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(current, d))]:
            path = Path(current, name)
            if path.relative_to(old).as_posix() in ours and not path.is_symlink():
                path.unlink()
        if Path(current) != old and not os.listdir(current):
            os.rmdir(current)
    if not os.listdir(old):
        os.rmdir(old)
        return None
    kept = _free_name(kept_base)
    os.replace(old, kept)
    return kept


def renew_folder(target: str | os.PathLike, write: Callable[[Path], Iterable[str | os.PathLike]]
                 ) -> tuple[list[Path], Path | None]:
    """Run write(new_folder), which returns the files it wrote there, and put the new folder in `target`'s
    place, recording those files in it. So the folder never mixes files of two runs, and of the previous
    folder only the files its record lists are deleted: anything else (a user's file; files of a version
    that kept no record) is kept in <target>.kept-N, whose path is returned. When `write` fails, the new
    folder goes and `target` stays as it was. Returns (the written files at their final paths, kept folder)."""
    target = Path(target)
    if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
        raise ConfigError(f"{target} exists and is not a folder: move it away, or choose another output folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        relative = [Path(p).relative_to(stage).as_posix() for p in write(stage)]
        atomic_write_text(stage / WRITTEN_LIST, "".join(f"{r}\n" for r in relative))
        if not target.exists():
            os.replace(stage, target)
            return [target / r for r in relative], None
        holder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, holder / target.name)
        try:
            os.replace(stage, target)
        except BaseException:
            os.replace(holder / target.name, target)
            os.rmdir(holder)
            raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # made above, holds only what `write` wrote
        raise
    kept = _retire(holder / target.name, target.with_name(f"{target.name}.kept"))
    os.rmdir(holder)
    return [target / r for r in relative], kept
