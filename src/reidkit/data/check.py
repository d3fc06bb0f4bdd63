"""`reidkit data check`: what a dataset holds, and the problems that would hurt training or testing.

    report = check_dataset(build_dataset("custom", root="mydata"), batch_identities=16)
    print(report.format()); report.fatal   # True when training or testing is impossible

Counts per split (images, identities, cameras), images per identity as a histogram, image sizes, and problems:
unreadable and zero-byte images, identities with a single image or seen by a single camera, query identities
missing from the gallery, queries left without a match by the evaluation protocol, and files found in two splits
(by content). A problem is fatal when it makes training or testing impossible: fewer training identities than a
batch needs, images the loaders would fail on, no query with a match.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from reidkit.data.base import read_image
from reidkit.errors import DatasetError

SUBSETS = ("train", "query", "gallery")
HISTOGRAM_EDGES = (1, 2, 3, 5, 10, 20, 50, 100)
EXAMPLES = 3


@dataclass(frozen=True)
class Problem:
    fatal: bool
    what: str
    detail: str
    examples: tuple[str, ...] = ()


@dataclass
class SubsetStats:
    images: int
    identities: int
    cameras: int | None  # None: the dataset has no camera ids
    per_identity: dict[str, int]  # histogram: images-per-identity bin -> identities
    sizes: dict[str, Any]  # width / height: [min, median, max]; common: [["WxH", images], ...]


@dataclass
class CheckReport:
    label: str
    root: str
    protocol: str = "market"
    has_cameras: bool = True
    subsets: dict[str, SubsetStats] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fatal": self.fatal}

    def format(self) -> str:
        cameras = "" if self.has_cameras else ", no camera ids"
        lines = [f"== {self.label} at {self.root} (evaluation protocol {self.protocol!r}{cameras})"]
        if self.subsets:
            lines += _format_counts(self.subsets) + _format_histogram(self.subsets) + _format_sizes(self.subsets)
        lines.append("problems:" if self.problems else "problems: none found")
        for p in self.problems:
            examples = f" (e.g. {', '.join(p.examples)})" if p.examples else ""
            lines.append(f"  {'FATAL' if p.fatal else 'warning':<7} {p.what}: {p.detail}{examples}")
        lines.append("verdict: " + ("training or testing is impossible until the fatal problems are fixed"
                                    if self.fatal else "usable for training and testing"))
        return "\n".join(lines)


def _format_counts(subsets: Mapping[str, SubsetStats]) -> list[str]:
    lines = [f"  {'subset':<8} {'images':>8} {'identities':>11} {'cameras':>8}"]
    for name, s in subsets.items():
        lines.append(f"  {name:<8} {s.images:>8} {s.identities:>11} {'-' if s.cameras is None else s.cameras:>8}")
    return lines


def _format_histogram(subsets: Mapping[str, SubsetStats]) -> list[str]:
    lines = ["images per identity (identities per bin):", "  " + f"{'images':<8}"
             + "".join(f"{name:>9}" for name in subsets)]
    labels = histogram_labels()
    used = [i for i, label in enumerate(labels) if any(s.per_identity.get(label) for s in subsets.values())]
    for label in labels[:max(used, default=0) + 1]:  # bins past the largest identity stay out
        lines.append(f"  {label:<8}" + "".join(f"{s.per_identity.get(label, 0):>9}" for s in subsets.values()))
    return lines


def _format_sizes(subsets: Mapping[str, SubsetStats]) -> list[str]:
    lines = ["image sizes (width x height, min / median / max):"]
    for name, s in subsets.items():
        if not s.sizes:
            continue
        w, h = s.sizes["width"], s.sizes["height"]
        common = ", ".join(f"{size} ({n})" for size, n in s.sizes["common"])
        lines.append(f"  {name:<8} {w[0]}x{h[0]} / {w[1]:g}x{h[1]:g} / {w[2]}x{h[2]}; most common {common}")
    return lines


def histogram_labels() -> list[str]:
    edges = list(HISTOGRAM_EDGES)
    labels = [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
    return labels + [f"{edges[-1]}+"]


def per_identity_histogram(samples: Sequence[tuple]) -> dict[str, int]:
    counts = Counter(s[1] for s in samples)
    bins = np.searchsorted(HISTOGRAM_EDGES, list(counts.values()), side="right") - 1
    labels = histogram_labels()
    return {labels[b]: int(n) for b, n in sorted(Counter(bins.tolist()).items())}


# ------------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageInfo:
    num_bytes: int
    digest: str | None
    size: tuple[int, int] | None  # (width, height) when readable
    error: str | None


def inspect_image(path: str) -> ImageInfo:
    """Bytes, content hash, size and whether the loaders can read the file (read_image, fully decoded)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return ImageInfo(0, None, None, f"cannot be opened ({exc.strerror})")
    if not data:
        return ImageInfo(0, None, None, "zero bytes")
    try:
        size = read_image(path).size
    except DatasetError as exc:
        return ImageInfo(len(data), hashlib.sha1(data).hexdigest(), None, str(exc))
    return ImageInfo(len(data), hashlib.sha1(data).hexdigest(), size, None)


def inspect_images(paths: Iterable[str], *, jobs: int | None = None, progress: bool = True) -> dict[str, ImageInfo]:
    """inspect_image of every distinct path, in threads (decoding releases the GIL)."""
    unique = list(dict.fromkeys(paths))
    jobs = jobs or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = tqdm(pool.map(inspect_image, unique), total=len(unique), desc="data check", unit="image",
                       disable=not progress, dynamic_ncols=True)
        return dict(zip(unique, results))


def _size_summary(infos: Iterable[ImageInfo]) -> dict[str, Any]:
    sizes = [i.size for i in infos if i.size is not None]
    if not sizes:
        return {}
    widths, heights = np.array([s[0] for s in sizes]), np.array([s[1] for s in sizes])
    common = Counter(f"{w}x{h}" for w, h in sizes).most_common(3)
    return {"width": [int(widths.min()), float(np.median(widths)), int(widths.max())],
            "height": [int(heights.min()), float(np.median(heights)), int(heights.max())],
            "common": [[size, n] for size, n in common]}


# ----------------------------------------------------------------------------------------------- problems


def _image_problems(subsets: Mapping[str, Sequence[tuple]], infos: Mapping[str, ImageInfo],
                    skip_bad_images: bool) -> list[Problem]:
    problems = []
    for what, test in (("zero-byte images", lambda i: i.error == "zero bytes"),
                       ("unreadable images", lambda i: i.error is not None and i.error != "zero bytes")):
        for name, samples in subsets.items():
            bad = [s[0] for s in samples if test(infos[s[0]])]
            if not bad:
                continue
            consequence = ("dropped when the dataset is read (skip_bad_images)" if skip_bad_images else
                           "the loaders stop at the first one (fix or remove them, or set "
                           "data.options.skip_bad_images: true to drop them)")
            problems.append(Problem(not skip_bad_images, f"{what} in {name}",
                                    f"{len(bad)} of {len(samples)}: {consequence}",
                                    tuple(_example(p, infos[p]) for p in bad[:EXAMPLES])))
    return problems


def _example(path: str, info: ImageInfo) -> str:
    return path if info.error in (None, "zero bytes") else info.error


def _train_problems(train: Sequence[tuple], has_cameras: bool, batch_identities: int | None) -> list[Problem]:
    # examples are image paths: training ids are relabelled 0..N-1, the user knows the files
    problems = []
    by_pid: dict[int, list[tuple]] = defaultdict(list)
    for sample in train:
        by_pid[sample[1]].append(sample)
    if batch_identities is not None and len(by_pid) < batch_identities:
        problems.append(Problem(True, "too few training identities",
                                f"{len(by_pid)}, but a batch takes {batch_identities} (train.batch_size / "
                                "data.num_instances): lower train.batch_size or add identities"))
    single = sorted(pid for pid, items in by_pid.items() if len(items) == 1)
    if single:
        problems.append(Problem(False, "training identities with a single image",
                                f"{len(single)} of {len(by_pid)}: the identity sampler repeats the image, so they "
                                "give the triplet loss no real positive pair",
                                tuple(by_pid[p][0][0] for p in single[:EXAMPLES])))
    one_camera = sorted(pid for pid, items in by_pid.items() if len({s[2] for s in items}) == 1)
    if has_cameras and one_camera:
        problems.append(Problem(False, "training identities seen by a single camera",
                                f"{len(one_camera)} of {len(by_pid)}: nothing teaches the model to match them "
                                "across cameras", tuple(by_pid[p][0][0] for p in one_camera[:EXAMPLES])))
    return problems


def _query_problems(query: Sequence[tuple], gallery: Sequence[tuple], protocol: str) -> list[Problem]:
    from reidkit.metrics.rank import RANK_PROTOCOLS

    problems = []
    gallery_pids = {s[1] for s in gallery}
    missing = sorted({s[1] for s in query} - gallery_pids)
    if missing:
        problems.append(Problem(False, "query identities missing from the gallery",
                                f"{len(missing)} of {len({s[1] for s in query})}: their queries are skipped",
                                tuple(f"pid {p}" for p in missing[:EXAMPLES])))
    q_keys, g_keys = RANK_PROTOCOLS.get(protocol).junk_keys(
        np.array([s[2] for s in query]), np.array([s[2] for s in gallery]),
        np.array([s[0] for s in query]), np.array([s[0] for s in gallery]))
    keys_by_pid: dict[int, set] = defaultdict(set)
    for sample, key in zip(gallery, g_keys.tolist()):
        keys_by_pid[sample[1]].add(key)
    # A query has a match when its identity has a gallery item the protocol keeps (another key).
    matchless = [s for s, key in zip(query, q_keys.tolist()) if s[1] in gallery_pids and not keys_by_pid[s[1]] - {key}]
    if matchless:
        rule = ("its identity is in the gallery only under the query's camera" if protocol != "self"
                else "its only gallery image is the query image itself")
        problems.append(Problem(False, f"queries without a match under protocol {protocol!r}",
                                f"{len(matchless)} of {len(query)}: {rule}; they are skipped",
                                tuple(s[0] for s in matchless[:EXAMPLES])))
    if len(matchless) + sum(1 for s in query if s[1] not in gallery_pids) == len(query):
        problems.append(Problem(True, "no query can be evaluated",
                                f"none of the {len(query)} queries has a match the protocol {protocol!r} keeps"))
    return problems


def _duplicate_problems(subsets: Mapping[str, Sequence[tuple]], infos: Mapping[str, ImageInfo],
                        protocol: str) -> list[Problem]:
    where: dict[str, dict[str, str]] = defaultdict(dict)  # digest -> subset -> a path
    for name, samples in subsets.items():
        for path, *_ in samples:
            digest = infos[path].digest
            if digest is not None:
                where[digest].setdefault(name, path)
    problems = []
    for a, b in (("train", "query"), ("train", "gallery"), ("query", "gallery")):
        pairs = [(found[a], found[b]) for found in where.values() if a in found and b in found]
        if protocol == "self" and (a, b) == ("query", "gallery"):
            # the same file in both is this protocol's design: it is removed from its own ranking
            pairs = [(p, q) for p, q in pairs if p != q]
        if pairs:
            leak = "train and test share images: the scores overstate" if a == "train" else \
                "a query finds its own copy at rank 1"
            problems.append(Problem(False, f"files in both {a} and {b}", f"{len(pairs)} identical images ({leak})",
                                    tuple(f"{p} = {q}" for p, q in pairs[:EXAMPLES])))
    return problems


# ------------------------------------------------------------------------------------------------- report


def check_dataset(dataset: Any, *, label: str | None = None, batch_identities: int | None = None,
                  skip_bad_images: bool = False, jobs: int | None = None, progress: bool = True) -> CheckReport:
    """Statistics and problems of an image dataset (an ImageDataset: .train/.query/.gallery samples)."""
    from reidkit.data.video import VideoDataset

    if isinstance(dataset, VideoDataset):
        raise DatasetError(f"data check: {dataset.name} is a video dataset; the check reads image datasets")
    subsets = {name: list(getattr(dataset, name)) for name in SUBSETS}
    has_cameras = bool(getattr(dataset, "has_cameras", True))
    protocol = str(getattr(dataset, "eval_protocol", "market"))
    report = CheckReport(label or dataset.name, str(dataset.root), protocol, has_cameras)
    infos = inspect_images((s[0] for samples in subsets.values() for s in samples), jobs=jobs, progress=progress)
    for name, samples in subsets.items():
        report.subsets[name] = SubsetStats(
            len(samples), len({s[1] for s in samples}), len({s[2] for s in samples}) if has_cameras else None,
            per_identity_histogram(samples), _size_summary(infos[s[0]] for s in samples))
    report.problems += _image_problems(subsets, infos, skip_bad_images)
    report.problems += _train_problems(subsets["train"], has_cameras, batch_identities)
    report.problems += _query_problems(subsets["query"], subsets["gallery"], protocol)
    report.problems += _duplicate_problems(subsets, infos, protocol)
    return report


def unloadable(label: str, root: str, error: Exception) -> CheckReport:
    """The report of a dataset that cannot be read at all: one fatal problem saying why."""
    return CheckReport(label, root, problems=[Problem(True, "the dataset cannot be loaded", str(error))])


__all__ = ["CheckReport", "Problem", "SubsetStats", "check_dataset", "inspect_image", "unloadable"]
