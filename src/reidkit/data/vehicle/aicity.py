"""AICity 2020 track 2 (docs/specs/vehicle-aicity.md section 4): image_train + train_label.xml, image_query / image_test
listed by name_query.txt / name_test.txt, test_track.txt.

The test labels are hidden: in split "test" the query and gallery carry pid -1 and camid -1, and the output
is a submission file (reidkit.postprocess). Split "val" holds out training identities (seeded) as a query /
gallery pair that can be scored: one query per (identity, camera), the identity's other images as gallery.
"""
from __future__ import annotations

import codecs
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from reidkit.data.base import DATASETS, Sample, find_dataset_dir
from reidkit.data.vehicle.common import VehicleDataset, listed_images, read_name_list, read_track_file
from reidkit.errors import DatasetError

SPLITS = ("test", "val")
LAYOUT = """  <root>/AIC20_track2/AIC20_ReID/  (or AIC20_ReID, or <root> itself)
      image_train/ image_query/ image_test/
      train_label.xml name_query.txt name_test.txt [test_track.txt]"""
XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
LABEL_ATTRIBUTES = ("imageName", "vehicleID", "cameraID")


def decode_xml(data: bytes, source: Path) -> str:
    """Decode XML bytes with the encoding its declaration names (UTF-8 without one).

    expat only decodes UTF-8/16, Latin-1 and ASCII; train_label.xml declares gb2312, so the bytes are decoded
    here with Python's codec and the text is parsed.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8")
    match = XML_DECLARATION.match(data)
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return data.decode(encoding)
    except LookupError:
        raise DatasetError(f"{source}: declares encoding {encoding!r}, which Python does not know") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: bytes {exc.start}-{exc.end} are not valid {encoding} "
                           "(the encoding its XML declaration names)") from None


def read_train_labels(path: Path) -> list[tuple[str, int, int]]:
    """(image name, vehicle id, 0-based camera) for every Item of train_label.xml."""
    if not path.is_file():
        raise DatasetError(f"AICity label file {path} does not exist")
    try:
        root = ET.fromstring(decode_xml(path.read_bytes(), path))
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: not well-formed XML ({exc})") from None
    items = root.iter("Item")
    labels = []
    for number, item in enumerate(items, start=1):
        missing = [a for a in LABEL_ATTRIBUTES if a not in item.attrib]
        if missing:
            raise DatasetError(f"{path}: Item {number} lacks {', '.join(missing)}; expected "
                               f"{', '.join(LABEL_ATTRIBUTES)}")
        name, vid, cam = (item.attrib[a] for a in LABEL_ATTRIBUTES)
        if not vid.isdigit() or not re.fullmatch(r"c\d+", cam) or int(cam[1:]) < 1:
            raise DatasetError(f"{path}: Item {number} ({name}) has vehicleID={vid!r} cameraID={cam!r}; "
                               "expected digits and c + 1-based number (e.g. 0001, c001)")
        labels.append((name, int(vid), int(cam[1:]) - 1))
    if not labels:
        raise DatasetError(f"{path}: no <Item> elements found")
    return labels


def validation_split(samples: list[Sample], num_val_ids: int, seed: int) -> tuple[list[Sample], list[Sample],
                                                                                    list[Sample]]:
    """(train, query, gallery): `num_val_ids` identities drawn with `seed` leave the training set; the first
    image of each of their (identity, camera) pairs is a query, their other images form the gallery."""
    pids = sorted({pid for _, pid, _ in samples})
    if not 0 < num_val_ids < len(pids):
        raise DatasetError(f"AICity validation: num_val_ids={num_val_ids}, expected 1..{len(pids) - 1} "
                           f"(the training set has {len(pids)} identities)")
    held_out = set(np.random.default_rng(seed).choice(pids, size=num_val_ids, replace=False).tolist())
    train, query, gallery, seen = [], [], [], set()
    for sample in sorted(samples):
        _, pid, cam = sample
        if pid not in held_out:
            train.append(sample)
        elif (pid, cam) not in seen:
            seen.add((pid, cam))
            query.append(sample)
        else:
            gallery.append(sample)
    return train, query, gallery


@DATASETS.register("aicity2020")
class AICity2020(VehicleDataset):
    """Options: split ("test": the hidden-label test set, for the submission; "val": held-out training
    identities), num_val_ids (50), val_seed (0)."""

    def __init__(self, root: str | os.PathLike, *, split: str = "test", num_val_ids: int = 50, val_seed: int = 0,
                 **options: object) -> None:
        if split not in SPLITS:
            raise DatasetError(f"AICity 2020: split={split!r}, expected one of {SPLITS}")
        self.split = split
        base = find_dataset_dir(root, ("AIC20_track2/AIC20_ReID", "AIC20_ReID", ""),
                                ("image_train", "train_label.xml"), "AICity 2020", LAYOUT)
        labels = read_train_labels(base / "train_label.xml")
        paths = listed_images(base / "image_train", [name for name, _, _ in labels])
        train = [(str(p), pid, cam) for p, (_, pid, cam) in zip(paths, labels)]
        tracks: list[np.ndarray] = []
        if split == "val":
            train, query, gallery = validation_split(train, num_val_ids, val_seed)
        else:
            query = [(str(p), -1, -1) for p in listed_images(base / "image_query",
                                                              read_name_list(base / "name_query.txt"))]
            gallery = [(str(p), -1, -1) for p in listed_images(base / "image_test",
                                                                read_name_list(base / "name_test.txt"))]
            track_file = base / "test_track.txt"
            if track_file.is_file():
                tracks = read_track_file(track_file, [p for p, _, _ in gallery])
        super().__init__(train, query, gallery, gallery_tracks=tracks, name=f"AICity2020-{split}", root=base,
                         **options)

    def _validate(self, subsets: dict[str, list[Sample]]) -> None:
        if self.split == "val":
            return super()._validate(subsets)
        # The test labels are hidden (pid and camid -1 by design): there is nothing to match up, only
        # emptiness to check; the training cameras come from train_label.xml, checked when it is read.
        for subset, samples in subsets.items():
            if not samples:
                raise DatasetError(f"{self.name}: the {subset} set under {self.root} holds no images")
