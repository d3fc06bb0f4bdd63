"""A seeded train / query / gallery split of a pool of identities, written next to the data and reused.

The custom dataset's `split: auto` (`data.options.split: auto`, `--split auto`) reads a folder of identities
(`<root>/<pid>/[<camid>/]<images>`) or a CSV without a split column and splits it here:

* `train_ids` of the identities (a fraction below 1, else a count) train; of the others, `distractor_ids` (a
  fraction of them below 1, else a count; default none) appear in the gallery only;
* every other (test) identity gives `query_per_id` of its images, drawn at random, to the query set and the rest
  to the gallery (an identity with too few images keeps one for the gallery); `query_per_id: 0` makes every
  test image a query ranked against all the others (query = gallery; the evaluation removes only the query
  image itself, or its camera's images when the data has cameras).

The draw depends on `split_seed` and the sorted identities and paths only. It is written to
`reidkit-split-<options>.json` in the data folder (beside a CSV: `<name>.reidkit-split-<options>.json`) and
read back on the next load, so a split survives added images and changes of machine; a pool holding identities
the file does not list is refused (delete the file to draw again). Paths in the file are relative to its folder.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from reidkit.errors import DatasetError
from reidkit.utils.io import atomic_write_json

SPLIT_VERSION = 1
RawSample = tuple[str, int, Any]  # (path, pid, camid or None)


@dataclass(frozen=True)
class SplitOptions:
    seed: int = 0
    train_ids: float = 0.5
    query_per_id: int = 1
    distractor_ids: float = 0.0

    def check(self, where: str) -> None:
        problems = [
            (isinstance(self.seed, bool) or not isinstance(self.seed, int), f"split_seed={self.seed!r}: expected an "
             "integer"),
            (not _share_ok(self.train_ids, positive=True), f"train_ids={self.train_ids!r}: expected a fraction in "
             "(0, 1) or a whole number of identities >= 1"),
            (isinstance(self.query_per_id, bool) or not isinstance(self.query_per_id, int) or self.query_per_id < 0,
             f"query_per_id={self.query_per_id!r}: expected an integer >= 0 (0: every test image is a query)"),
            (not _share_ok(self.distractor_ids, positive=False), f"distractor_ids={self.distractor_ids!r}: expected "
             "0, a fraction in (0, 1) or a whole number of identities"),
        ]
        for failed, message in problems:
            if failed:
                raise DatasetError(f"{where}: {message}")

    def key(self) -> str:
        return f"seed{self.seed}-train{self.train_ids:g}-query{self.query_per_id}-distractors{self.distractor_ids:g}"


def _share_ok(value: Any, *, positive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        return False
    return value < 1 or float(value).is_integer()


def _by_path(sample: RawSample) -> tuple[str, int]:
    return sample[0], sample[1]


def _count(share: float, total: int) -> int:
    return int(round(share * total)) if share < 1 else int(share)


def split_file(root: Path, options: SplitOptions) -> Path:
    """Where the split of the data at `root` (a folder, or a CSV file) is kept."""
    if root.is_dir():
        return root / f"reidkit-split-{options.key()}.json"
    return root.with_name(f"{root.stem}.reidkit-split-{options.key()}.json")


def draw_split(samples: Sequence[RawSample], options: SplitOptions, where: str) -> dict[str, Any]:
    """{"train": pids, "test": pids, "distractors": pids, "query": paths} drawn from `options.seed`."""
    pids = sorted({s[1] for s in samples})
    num_train = _count(options.train_ids, len(pids))
    rest = len(pids) - num_train
    num_distractors = _count(options.distractor_ids, rest)
    if num_train < 1 or rest - num_distractors < 1:
        raise DatasetError(f"{where}: split auto of {len(pids)} identities gives {num_train} to training, "
                           f"{num_distractors} distractors and {rest - num_distractors} to test; training and "
                           "test need one identity each at least (change train_ids / distractor_ids)")
    rng = np.random.default_rng(options.seed)
    order = [pids[i] for i in rng.permutation(len(pids))]
    train, distractors, test = order[:num_train], order[num_train:num_train + num_distractors], \
        order[num_train + num_distractors:]
    by_pid: dict[int, list[str]] = {}
    for path, pid, _ in sorted(samples, key=_by_path):
        by_pid.setdefault(pid, []).append(path)
    query = []
    for pid in sorted(test):
        paths = by_pid[pid]
        take = len(paths) if options.query_per_id == 0 else min(options.query_per_id, len(paths) - 1)
        query += [paths[i] for i in sorted(rng.choice(len(paths), size=take, replace=False).tolist())]
    return {"train": sorted(train), "test": sorted(test), "distractors": sorted(distractors), "query": query}


def apply_split(samples: Sequence[RawSample], split: Mapping[str, Any], options: SplitOptions
                ) -> dict[str, list[RawSample]]:
    train, distractors, query_paths = set(split["train"]), set(split["distractors"]), set(split["query"])
    subsets: dict[str, list[RawSample]] = {"train": [], "query": [], "gallery": []}
    for sample in sorted(samples, key=_by_path):
        if sample[1] in train:
            subsets["train"].append(sample)
            continue
        is_query = sample[1] not in distractors and sample[0] in query_paths
        if is_query:
            subsets["query"].append(sample)
        if not is_query or options.query_per_id == 0:
            subsets["gallery"].append(sample)
    return subsets


def _relative(path: str, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path


def write_split(path: Path, split: Mapping[str, Any], options: SplitOptions) -> None:
    record = {"version": SPLIT_VERSION, "options": asdict(options), **split,
              "query": [_relative(p, path.parent) for p in split["query"]]}
    try:
        atomic_write_json(path, record)
    except OSError as exc:
        warnings.warn(f"could not write the split file {path} ({exc.strerror or exc}); the same split is drawn "
                      "again from split_seed on every load", stacklevel=4)


def read_split(path: Path, samples: Sequence[RawSample], options: SplitOptions) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        split = {key: list(record[key]) for key in ("train", "test", "distractors", "query")}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"split file {path} cannot be read ({type(exc).__name__}: {exc}); delete it to draw "
                           "the split again") from None
    if record.get("options") != asdict(options):
        raise DatasetError(f"split file {path} was written with options {record.get('options')}, not "
                           f"{asdict(options)}; delete it to draw the split again")
    listed = set(split["train"]) | set(split["test"]) | set(split["distractors"])
    unknown = sorted({s[1] for s in samples} - listed)
    if unknown:
        raise DatasetError(f"split file {path} does not list identities {unknown[:5]}"
                           f"{' ...' if len(unknown) > 5 else ''} of the data; delete it to draw the split again "
                           "(or use another split_seed)")
    split["query"] = [p if os.path.isabs(p) else str(path.parent / p) for p in split["query"]]
    return split


def auto_split(samples: Sequence[RawSample], root: Path, options: SplitOptions, where: str
               ) -> dict[str, list[RawSample]]:
    """train / query / gallery of `samples`: the split stored beside the data, else a new draw, stored."""
    options.check(where)
    if not samples:
        raise DatasetError(f"{where}: no images to split under {root}")
    path = split_file(root, options)
    if path.is_file():
        split = read_split(path, samples, options)
    else:
        split = draw_split(samples, options, where)
        write_split(path, split, options)
    return apply_split(samples, split, options)


__all__ = ["SplitOptions", "auto_split", "draw_split", "apply_split", "split_file"]
