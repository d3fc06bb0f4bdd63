"""Per-tracklet attribute labels: the schemas of MARS and DukeMTMC-VideoReID and their attribute CSVs.

An AttributeSchema lists attributes (name, number of classes) in the CSV's column order, split into groups:
"irrelevant" (ID-irrelevant: action, viewing angle, occlusion, ...) and "relevant" (ID-relevant: clothing
colours, bag, hat, ...). A tracklet's label is one class index per attribute; the models see it as each
group's concatenated one-hot code (MARS: 25 + 41 values).

CSV layout (mars_attributes.csv is GBK-encoded): a header, then one row per tracklet:
person_id, camera_id (1-based), tracklets_id, then the class indices, read by position.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from reidkit.errors import DatasetError

Labels = tuple[int, ...]
TrackletKey = tuple[int, int, str]  # (person id, 1-based camera, tracklet id as written by tracklet_key)

IRRELEVANT = "irrelevant"
RELEVANT = "relevant"
BINARY_IRRELEVANT = ("occlusion", "cut", "multi_person", "back_dominant", "target_change", "target_miss",
                     "wrong_target")


def _binary(*names: str) -> tuple[tuple[str, int], ...]:
    return tuple((name, 2) for name in names)


@dataclass(frozen=True)
class AttributeSchema:
    """Attribute groups in CSV column order: ((group, ((attribute, num_classes), ...)), ...)."""

    name: str
    groups: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]

    @property
    def attributes(self) -> list[tuple[str, str, int]]:
        """(group, attribute, num_classes) of every attribute, in CSV column order."""
        return [(group, attr, n) for group, attrs in self.groups for attr, n in attrs]

    @property
    def group_dims(self) -> dict[str, int]:
        """Length of each group's one-hot code: the size of its attribute head."""
        return {group: sum(n for _, n in attrs) for group, attrs in self.groups}

    def __len__(self) -> int:
        return len(self.attributes)

    def check(self, values: Sequence[int], where: str) -> Labels:
        """`values` as a label tuple, or DatasetError naming `where`, the attribute and its valid range."""
        if len(values) != len(self):
            raise DatasetError(f"{where}: {len(values)} attribute values, expected {len(self)} "
                               f"({', '.join(a for _, a, _ in self.attributes)})")
        for value, (_, attr, n) in zip(values, self.attributes):
            if not 0 <= value < n:
                raise DatasetError(f"{where}: attribute {attr!r} = {value}, expected a class index in 0..{n - 1}")
        return tuple(int(v) for v in values)

    def one_hot(self, labels: Labels) -> dict[str, torch.Tensor]:
        """group -> concatenated one-hot code (float32), the BCE targets."""
        codes, i = {}, 0
        for group, attrs in self.groups:
            parts = []
            for _, n in attrs:
                code = torch.zeros(n)
                code[labels[i]] = 1.0
                parts.append(code)
                i += 1
            codes[group] = torch.cat(parts)
        return codes

    def predict(self, logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Class index of every attribute [B, len(schema)]: argmax within each attribute's slice of its group."""
        columns = []
        for group, attrs in self.groups:
            group_logits, start = logits[group], 0
            if group_logits.shape[-1] != self.group_dims[group]:
                raise ValueError(f"{group} attribute logits have {group_logits.shape[-1]} values, the {self.name} "
                                 f"schema needs {self.group_dims[group]}")
            for _, n in attrs:
                columns.append(group_logits[:, start:start + n].argmax(1))
                start += n
        return torch.stack(columns, 1)


MARS_ATTRIBUTES = AttributeSchema("MARS", (
    (IRRELEVANT, (("action", 5), ("angle", 6)) + _binary(*BINARY_IRRELEVANT)),
    (RELEVANT, (("upcolor", 9), ("downcolor", 10), ("age", 4))
     + _binary("up", "down", "bag", "backpack", "hat", "handbag", "hair", "gender", "btype")),
))

DUKEV_ATTRIBUTES = AttributeSchema("DukeMTMC-VideoReID", (
    (IRRELEVANT, (("action", 5), ("angle", 6)) + _binary(*BINARY_IRRELEVANT)),
    (RELEVANT, _binary("backpack", "shoulder_bag", "handbag", "boots", "gender", "hat", "shoes", "top")
     + (("downcolor", 8), ("topcolor", 9))),
))


def tracklet_key(pid: int, camera: int, tracklet: str | int) -> TrackletKey:
    """Key of a tracklet's attribute row. Tracklet ids compare as integers when they are ("0007" == "7"),
    as text otherwise, so DukeV folders whose names are not integers still match."""
    text = str(tracklet).strip()
    return int(pid), int(camera), str(int(text)) if text.lstrip("-").isdigit() else text


def read_attribute_csv(path: str | os.PathLike, schema: AttributeSchema, encoding: str = "utf-8") -> dict[TrackletKey, Labels]:
    """Rows of an attribute CSV keyed by (pid, camera, tracklet); bad rows raise DatasetError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"attribute file {path} does not exist; expected a CSV with columns person_id, "
                           f"camera_id, tracklets_id and the {len(schema)} {schema.name} attributes")
    try:
        with open(path, newline="", encoding=encoding) as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"attribute file {path} is not {encoding} text ({exc})") from None
    if not rows:
        raise DatasetError(f"attribute file {path} is empty; expected a header and one row per tracklet")
    table: dict[TrackletKey, Labels] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {line}"
        if len(row) != 3 + len(schema):
            raise DatasetError(f"{where}: {len(row)} columns, expected 3 + {len(schema)} (person_id, camera_id, "
                               f"tracklets_id, then the {schema.name} attributes)")
        try:
            pid, camera, values = int(row[0]), int(row[1]), [int(float(v)) for v in row[3:]]
        except ValueError:
            raise DatasetError(f"{where}: person_id, camera_id and the attribute values must be integers, "
                               f"got {row}") from None
        key = tracklet_key(pid, camera, row[2])
        labels = schema.check(values, where)
        if table.setdefault(key, labels) != labels:
            raise DatasetError(f"{where}: tracklet (person {pid}, camera {camera}, tracklet {row[2]}) appears "
                               "twice with different attributes")
    return table


def lookup_attributes(table: Mapping[TrackletKey, Labels] | None, keys: Sequence[TrackletKey], *, required: bool,
                      source: str | os.PathLike, dataset: str) -> list[Labels | None]:
    """The label of every tracklet key (None without a row). With `required` (training tracklets) a missing
    row is a DatasetError naming the tracklet and the CSV."""
    if table is None:
        return [None] * len(keys)
    labels = [table.get(key) for key in keys]
    missing = [key for key, label in zip(keys, labels) if label is None]
    if required and missing:
        pid, camera, tracklet = missing[0]
        raise DatasetError(f"{dataset}: training tracklet (person {pid}, camera {camera}, tracklet {tracklet}) has "
                           f"no row in {source}; every training tracklet needs its attributes "
                           f"({len(missing)} of {len(keys)} lack one)")
    return labels
