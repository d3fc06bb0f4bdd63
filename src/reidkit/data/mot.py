"""MOTChallenge tracking ground truth -> a re-ID dataset of crops in the custom folder layout.

    reidkit data from-mot --sequences MOT17/train --output data/mot17_reid --min-height 50 --every 5
    convert_mot("MOT17/train", "data/mot17_reid", MotOptions(min_height=50, every=5))

A sequence folder holds gt/gt.txt and its frames (img1/, or seqinfo.ini's imDir and imExt). A gt.txt line is
`frame, id, left, top, width, height, conf, class, visibility` (MOT16/17/20); files without the last two columns
(MOT15: `..., conf, x, y, z`) are read as pedestrians seen fully. `--sequences` is one sequence folder, a folder
of them, or a MOTChallenge root with train/. MOT17 ships every sequence three times (-DPM, -FRCNN, -SDP: the
same frames and ground truth); one copy is used, FRCNN first, as MMDetection's mot2reid does.

Kept boxes: the listed classes (default 1, pedestrian) with conf != 0 (MOT marks ignored boxes with 0), at
least `min_visibility` visible and `min_height` pixels high once clipped to the frame, on every `every`-th
frame. An identity is a (sequence, track id) pair; identities with fewer than `min_images` boxes are dropped and
those with more than `max_images` thinned evenly. Each sequence is one camera (camid = its position in name
order unless `cameras` says otherwise). A seeded `test_ids` share of the identities (a fraction below 1, else a
count) becomes the test identities: `query_per_id` of each one's crops go to query/, the rest to gallery/; the
others' crops go to train/. The output is `<output>/{train,query,gallery}/<pid>/<camid>/<sequence>_<frame>.jpg`
with `identities.csv` (pid -> sequence, track) and `conversion.json` (options, cameras, counts), read by
`build_dataset("custom", root=output)`. An identity is seen by one camera only, so the custom dataset evaluates
it with the protocol that removes only the query image itself (see reidkit.data.datasets.custom).

The crops are written into a temporary folder beside `output` and moved into place at the end: an interrupted
conversion leaves nothing half-written, and an existing non-empty `output` is never touched.
"""
from __future__ import annotations

import configparser
import csv
import io
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image
from tqdm import tqdm

from reidkit.data.base import IMAGE_SUFFIXES, read_image, read_text_file
from reidkit.errors import ConfigError, DatasetError
from reidkit.utils.io import atomic_write_json, atomic_write_text

SUBSETS = ("train", "query", "gallery")
# MOT17's detector copies of one sequence, in the order preferred (mot2reid keeps FRCNN only).
DETECTOR_SUFFIXES = ("FRCNN", "SDP", "DPM")
_DETECTOR_COPY = re.compile(r"^(?P<base>.+)-(?P<detector>" + "|".join(DETECTOR_SUFFIXES) + r")$")


@dataclass(frozen=True)
class MotOptions:
    """What `convert_mot` keeps and how it splits; the defaults follow MMDetection's mot2reid where it has one."""

    min_height: float = 0.0
    min_visibility: float = 0.3
    every: int = 1
    classes: tuple[int, ...] = (1,)
    min_images: int = 8
    max_images: int = 1000
    test_ids: float = 0.2
    query_per_id: int = 1
    seed: int = 0
    cameras: Mapping[str, int] = field(default_factory=dict)
    jpeg_quality: int = 95

    def check(self) -> None:
        problems = [
            (self.min_height < 0, f"min_height={self.min_height}: expected >= 0 pixels"),
            (not 0 <= self.min_visibility <= 1, f"min_visibility={self.min_visibility}: expected 0..1"),
            (self.every < 1, f"every={self.every}: expected a positive number of frames"),
            (not self.classes, "classes: expected at least one MOT class id (1: pedestrian)"),
            (self.query_per_id < 1, f"query_per_id={self.query_per_id}: expected >= 1"),
            (self.min_images < self.query_per_id + 1,
             f"min_images={self.min_images}: expected >= query_per_id + 1 = {self.query_per_id + 1} (a test "
             "identity needs a query and a gallery crop)"),
            (self.max_images < self.min_images, f"max_images={self.max_images}: expected >= min_images"),
            (not self.test_ids > 0, f"test_ids={self.test_ids}: expected a fraction in (0, 1) or a count >= 1"),
            (self.test_ids >= 1 and self.test_ids != int(self.test_ids),
             f"test_ids={self.test_ids}: a count of identities must be a whole number"),
            (not 1 <= self.jpeg_quality <= 100, f"jpeg_quality={self.jpeg_quality}: expected 1..100"),
        ]
        negative = [name for name, camid in self.cameras.items() if camid < 0]
        problems.append((bool(negative), f"cameras: {negative} have a negative camera id; expected >= 0"))
        for failed, message in problems:
            if failed:
                raise ConfigError(f"data from-mot: {message}")


@dataclass(frozen=True)
class MotSequence:
    name: str
    folder: Path
    image_dir: Path
    image_ext: str
    camid: int

    @property
    def ground_truth(self) -> Path:
        return self.folder / "gt" / "gt.txt"


@dataclass(frozen=True)
class Box:
    sequence: str
    track: int
    frame: int
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels, clipped to the frame when it is known


@dataclass
class ConversionReport:
    output: Path
    sequences: dict[str, int]  # sequence -> camid
    skipped_copies: list[str]
    identities: dict[str, int]  # subset -> identities
    images: dict[str, int]  # subset -> crops
    dropped: dict[str, int]  # reason -> boxes

    def summary(self) -> str:
        # every test identity has query and gallery crops: the gallery counts them once
        total = self.identities["train"] + self.identities["gallery"]
        rows = [f"wrote {self.output}: {sum(self.images.values())} crops of {total} identities "
                f"({self.identities['train']} train, {self.identities['gallery']} test) from {len(self.sequences)} "
                "sequences (one camera each)"]
        rows += [f"  {subset:<8} {self.identities[subset]:>6} identities {self.images[subset]:>8} images"
                 for subset in SUBSETS]
        if self.dropped:
            rows.append("  boxes left out: " + ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())))
        if self.skipped_copies:
            rows.append(f"  detector copies skipped (same frames and ground truth): {', '.join(self.skipped_copies)}")
        return "\n".join(rows)


# ---------------------------------------------------------------------------------------------- sequences


def _read_seqinfo(folder: Path) -> dict[str, str]:
    path = folder / "seqinfo.ini"
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read_string(read_text_file(path, "sequence info file"))
    except configparser.Error as exc:
        raise DatasetError(f"{path} cannot be read as an INI file ({exc})") from None
    return {k.lower(): v.strip() for k, v in parser["Sequence"].items()} if parser.has_section("Sequence") else {}


def _image_ext(image_dir: Path, info: Mapping[str, str]) -> str:
    if info.get("imext"):
        return info["imext"] if info["imext"].startswith(".") else "." + info["imext"]
    suffixes = Counter(p.suffix.lower() for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return suffixes.most_common(1)[0][0] if suffixes else ".jpg"


def _sequence_folders(root: Path) -> list[Path]:
    if (root / "gt" / "gt.txt").is_file():
        return [root]
    for base in (root, root / "train"):
        found = sorted(p for p in base.iterdir() if (p / "gt" / "gt.txt").is_file()) if base.is_dir() else []
        if found:
            return found
    raise DatasetError(f"data from-mot: no sequence under {root}: expected <sequence>/gt/gt.txt and "
                       f"<sequence>/img1/ in {root}, in its subfolders or in {root / 'train'}")


def _without_detector_copies(folders: list[Path]) -> tuple[list[Path], list[str]]:
    """One folder per MOT17 sequence: the copies for other detectors hold the same frames and ground truth."""
    rank = {detector: i for i, detector in enumerate(DETECTOR_SUFFIXES)}

    def preference(folder: Path) -> int:  # a folder without a detector suffix comes first
        match = _DETECTOR_COPY.match(folder.name)
        return rank[match["detector"]] if match else -1

    best: dict[str, Path] = {}
    for folder in folders:
        match = _DETECTOR_COPY.match(folder.name)
        key = match["base"] if match else folder.name
        if key not in best or preference(folder) < preference(best[key]):
            best[key] = folder
    kept = sorted(best.values())
    return kept, sorted(f.name for f in folders if f not in kept)


def find_sequences(root: str | os.PathLike, cameras: Mapping[str, int] | None = None
                   ) -> tuple[list[MotSequence], list[str]]:
    """The sequences under `root` (camid: their position in name order, or `cameras[name]`) and the names of
    the MOT17 detector copies left out."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data from-mot: --sequences {root} is not a folder")
    folders, skipped = _without_detector_copies(_sequence_folders(root))
    cameras = dict(cameras or {})
    unknown = sorted(set(cameras) - {f.name for f in folders})
    if unknown:
        raise ConfigError(f"data from-mot: --camera names {unknown}, which are not sequences under {root} "
                          f"(sequences: {', '.join(f.name for f in folders)})")
    sequences = []
    for position, folder in enumerate(folders):
        info = _read_seqinfo(folder)
        image_dir = folder / info.get("imdir", "img1")
        if not image_dir.is_dir():
            raise DatasetError(f"data from-mot: {folder} has no frame folder {image_dir.name}/")
        sequences.append(MotSequence(folder.name, folder, image_dir, _image_ext(image_dir, info),
                                     cameras.get(folder.name, position)))
    return sequences, skipped


# ------------------------------------------------------------------------------------------- ground truth


def _parse_line(fields: list[str], where: str) -> tuple[int, int, list[float], float, int, float]:
    """(frame, track, [left, top, width, height], conf, class, visibility) of one gt.txt line."""
    if len(fields) < 6:
        raise DatasetError(f"{where}: expected 'frame, id, left, top, width, height, conf, class, visibility', "
                           f"got {len(fields)} fields")
    try:
        frame, track = int(float(fields[0])), int(float(fields[1]))
        box = [float(v) for v in fields[2:6]]
        conf = float(fields[6]) if len(fields) > 6 else 1.0
        # MOT16/17/20 have exactly 9 columns; MOT15's 10 end in 3-D coordinates, not class and visibility.
        with_class = len(fields) == 9
        label = int(float(fields[7])) if with_class else 1
        visibility = float(fields[8]) if with_class else 1.0
    except ValueError:
        raise DatasetError(f"{where}: a field is not a number: {','.join(fields)}") from None
    return frame, track, box, conf, label, visibility


def _frame_size(sequence: MotSequence) -> tuple[int, int] | None:
    """(width, height) of the sequence's frames: seqinfo.ini's, else the first frame's; None without frames."""
    info = _read_seqinfo(sequence.folder)
    try:
        return int(info["imwidth"]), int(info["imheight"])
    except (KeyError, ValueError):
        pass
    first = next((p for p in sorted(sequence.image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES), None)
    if first is None:
        return None
    try:
        with Image.open(first) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        raise DatasetError(f"data from-mot: frame {first} cannot be read as an image") from None


def _drop_reason(box: tuple[float, float, float, float], frame: int, conf: float, label: int, visibility: float,
                 options: MotOptions) -> str | None:
    """Why a ground-truth box is left out, or None to keep it (box: left, top, right, bottom, clipped)."""
    if conf == 0:
        return "ignored (conf 0)"
    if label not in options.classes:
        return f"of classes other than {list(options.classes)}"
    if visibility < options.min_visibility:
        return f"less visible than {options.min_visibility:g}"
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return "outside the frame"
    if box[3] - box[1] < options.min_height:
        return f"lower than {options.min_height:g} px"
    if (frame - 1) % options.every:
        return f"on frames skipped by every={options.every}"
    return None


def read_ground_truth(sequence: MotSequence, options: MotOptions, dropped: Counter) -> list[Box]:
    """The boxes of `sequence` that pass the filters; `dropped` counts the others by reason."""
    size = _frame_size(sequence)
    text = read_text_file(sequence.ground_truth, "ground-truth file")
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        frame, track, (left, top, width, height), conf, label, visibility = _parse_line(
            fields, f"{sequence.ground_truth}:{lineno}")
        clipped = (left, top, left + width, top + height)
        if size is not None:
            clipped = (max(left, 0), max(top, 0), min(left + width, size[0]), min(top + height, size[1]))
        reason = _drop_reason(clipped, frame, conf, label, visibility, options)
        if reason:
            dropped[reason] += 1
            continue
        boxes.append(Box(sequence.name, track, frame, tuple(round(v) for v in clipped)))
    return boxes


def _thin(boxes: list[Box], limit: int) -> list[Box]:
    """At most `limit` boxes, evenly spaced along the track (mot2reid samples at random; even spacing keeps
    the whole track and is the same on every run)."""
    boxes = sorted(boxes, key=lambda b: b.frame)
    if len(boxes) <= limit:
        return boxes
    return [boxes[i] for i in np.linspace(0, len(boxes) - 1, limit).round().astype(int)]


def select_identities(boxes: Iterable[Box], options: MotOptions, dropped: Counter) -> dict[tuple[str, int], list[Box]]:
    by_identity: dict[tuple[str, int], list[Box]] = defaultdict(list)
    for box in boxes:
        by_identity[(box.sequence, box.track)].append(box)
    kept = {}
    for key in sorted(by_identity):
        if len(by_identity[key]) < options.min_images:
            dropped[f"of identities with fewer than {options.min_images} boxes"] += len(by_identity[key])
            continue
        kept[key] = _thin(by_identity[key], options.max_images)
        dropped[f"thinned (more than {options.max_images} per identity)"] += len(by_identity[key]) - len(kept[key])
    return kept


def split_identities(identities: Mapping[tuple[str, int], list[Box]], options: MotOptions
                     ) -> dict[str, dict[tuple[str, int], list[Box]]]:
    """train / query / gallery boxes per identity: a seeded share of the identities is tested, `query_per_id`
    of each one's boxes (drawn at random) are its queries."""
    keys = sorted(identities)
    if len(keys) < 2:
        raise DatasetError(f"data from-mot: {len(keys)} identities pass the filters; a train and a test identity "
                           "are needed at least (lower --min-images, --min-height or --min-visibility)")
    rng = np.random.default_rng(options.seed)
    wanted = options.test_ids * len(keys) if options.test_ids < 1 else options.test_ids
    num_test = int(min(max(round(wanted), 1), len(keys) - 1))
    test = {keys[i] for i in rng.permutation(len(keys))[:num_test]}
    subsets: dict[str, dict[tuple[str, int], list[Box]]] = {subset: {} for subset in SUBSETS}
    for key in keys:
        boxes = identities[key]
        if key not in test:
            subsets["train"][key] = boxes
            continue
        chosen = set(rng.choice(len(boxes), size=options.query_per_id, replace=False).tolist())
        subsets["query"][key] = [b for i, b in enumerate(boxes) if i in chosen]
        subsets["gallery"][key] = [b for i, b in enumerate(boxes) if i not in chosen]
    return subsets


# ------------------------------------------------------------------------------------------------ writing


def _frame_file(sequence: MotSequence, frame: int, listing: dict[str, list[Path]]) -> Path:
    path = sequence.image_dir / f"{frame:06d}{sequence.image_ext}"
    if path.is_file():
        return path
    # Frames not named by number: the frame-th image in name order (what mot2reid assumes throughout).
    if sequence.name not in listing:
        listing[sequence.name] = sorted(p for p in sequence.image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = listing[sequence.name]
    if not 1 <= frame <= len(images):
        raise DatasetError(f"data from-mot: {sequence.ground_truth} refers to frame {frame}, but {path} does not "
                           f"exist and {sequence.image_dir} holds {len(images)} images")
    return images[frame - 1]


def _write_crops(tmp: Path, sequences: list[MotSequence], subsets: Mapping[str, Mapping[tuple[str, int], list[Box]]],
                 pids: Mapping[tuple[str, int], int], options: MotOptions, progress: bool) -> None:
    by_frame: dict[tuple[str, int], list[tuple[str, Box]]] = defaultdict(list)
    for subset, identities in subsets.items():
        for boxes in identities.values():
            for box in boxes:
                by_frame[(box.sequence, box.frame)].append((subset, box))
    camid = {s.name: s.camid for s in sequences}
    named = {s.name: s for s in sequences}
    listing: dict[str, list[Path]] = {}
    for sequence, frame in tqdm(sorted(by_frame), desc="from-mot", unit="frame", disable=not progress,
                                dynamic_ncols=True):
        image = read_image(_frame_file(named[sequence], frame, listing))
        for subset, box in by_frame[(sequence, frame)]:
            pid = pids[(box.sequence, box.track)]
            folder = tmp / subset / str(pid) / str(camid[sequence])
            folder.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            image.crop(box.box).save(buffer, format="JPEG", quality=options.jpeg_quality)
            (folder / f"{sequence}_{frame:06d}.jpg").write_bytes(buffer.getvalue())


def _identity_table(subsets: Mapping[str, Mapping[tuple[str, int], list[Box]]], pids: Mapping[tuple[str, int], int],
                    cameras: Mapping[str, int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pid", "sequence", "track", "camid", "subset", "images"])
    for subset, identities in subsets.items():
        for (sequence, track), boxes in identities.items():
            writer.writerow([pids[(sequence, track)], sequence, track, cameras[sequence], subset, len(boxes)])
    return out.getvalue()


def _check_output(output: Path) -> None:
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        raise DatasetError(f"data from-mot: --output {output} already exists and is not empty; choose a new folder "
                           "(nothing was written)")


def convert_mot(sequences_dir: str | os.PathLike, output: str | os.PathLike, options: MotOptions = MotOptions(),
                *, progress: bool = True) -> ConversionReport:
    """Convert the MOT sequences under `sequences_dir` into a custom-layout re-ID dataset at `output`."""
    options.check()
    output = Path(output).expanduser()
    _check_output(output)
    sequences, skipped = find_sequences(sequences_dir, options.cameras)
    dropped: Counter = Counter()
    boxes = [box for sequence in sequences for box in read_ground_truth(sequence, options, dropped)]
    subsets = split_identities(select_identities(boxes, options, dropped), options)
    ordered = sorted(key for identities in subsets.values() for key in identities)
    pids = {key: pid for pid, key in enumerate(dict.fromkeys(ordered), start=1)}
    cameras = {s.name: s.camid for s in sequences}
    report = ConversionReport(output, cameras, skipped,
                              {s: len(subsets[s]) for s in SUBSETS},
                              {s: sum(len(b) for b in subsets[s].values()) for s in SUBSETS},
                              {why: n for why, n in dropped.items() if n})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    try:
        _write_crops(tmp, sequences, subsets, pids, options, progress)
        atomic_write_text(tmp / "identities.csv", _identity_table(subsets, pids, cameras))
        atomic_write_json(tmp / "conversion.json", {
            "source": str(Path(sequences_dir).expanduser().resolve()), "options": _plain(options),
            "cameras": cameras, "skipped_copies": skipped, "identities": report.identities,
            "images": report.images, "dropped": report.dropped})
        _check_output(output)  # it may have appeared meanwhile
        if output.is_dir():
            output.rmdir()
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _plain(options: MotOptions) -> dict:
    plain = asdict(options)
    plain["classes"] = list(options.classes)
    plain["cameras"] = dict(options.cameras)
    return plain


__all__ = ["MotOptions", "MotSequence", "ConversionReport", "convert_mot", "find_sequences", "read_ground_truth"]
