"""Several datasets at once: joint training on `data.sources`, evaluation on each of `test.targets`.

    specs = dataset_specs(["market1501", {"name": "custom", "root": "mine", "options": {"split": "auto"}}],
                          default_root="data", key="data.sources")
    train_on = build_joint_dataset(specs)        # one ImageDataset: the union, ids and cameras offset
    train_on.pid_ranges                          # {"market1501": (0, 751), "custom": (751, 851)}

An entry is a dataset name (read from `default_root`, data.root, without options) or a mapping with `name` and
optionally `root`, `options` (its build_dataset options) and `label` (how tables name it; default the name, or
`name:<root folder>` when two entries share a name).

The joint dataset's training identities are each source's relabelled ids moved past the previous sources'
(source i takes ids offset_i .. offset_i + N_i - 1), its cameras likewise (every camera id of source i, train,
query or gallery, gets its own joint id), so no two sources share an identity or a camera, and the identity
sampler, DDP shares included, draws from the union. Its query and gallery are the sources' with the same camera
mapping and identities renumbered per source (no collisions either); the engine evaluates each target on its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from reidkit.data.base import ImageDataset, Sample, build_dataset, dataset_options
from reidkit.errors import ConfigError, RegistryError

SPEC_KEYS = ("name", "root", "options", "label")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    root: str
    options: dict = field(default_factory=dict)
    label: str = ""

    def build(self) -> ImageDataset:
        return build_dataset(self.name, self.root, **self.options)


def _spec(entry: Any, default_root: str, where: str) -> DatasetSpec:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}={entry!r}: expected a dataset name or a mapping with name, root, options")
    unknown = sorted(set(entry) - set(SPEC_KEYS))
    if unknown or not isinstance(entry.get("name"), str) or not entry["name"]:
        problem = f"unknown keys {unknown}" if unknown else "no name"
        raise ConfigError(f"{where}: {problem}; expected a mapping with name and optionally {', '.join(SPEC_KEYS[1:])}")
    try:
        accepted = dataset_options(entry["name"])
    except RegistryError as error:
        raise ConfigError(f"{where}.name: {error}") from None
    options = entry.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}.options={options!r}: expected a mapping of {entry['name']} options")
    for key in options:
        if key not in accepted:
            raise ConfigError(f"{where}.options.{key}: dataset {entry['name']!r} has no option {key!r} (its options "
                              f"and defaults: {accepted})")
    root = entry.get("root", default_root)
    if not isinstance(root, (str, os.PathLike)) or not str(root):
        raise ConfigError(f"{where}.root={root!r}: expected a folder")
    label = entry.get("label") or ""
    if not isinstance(label, str):
        raise ConfigError(f"{where}.label={label!r}: expected a string")
    return DatasetSpec(entry["name"], os.fspath(root), dict(options), label)


def dataset_specs(entries: Sequence[Any], *, default_root: str, key: str) -> list[DatasetSpec]:
    """Validated specs of `entries` (names or mappings) with unique labels; ConfigError naming `key[i]` else."""
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigError(f"{key}={entries!r}: expected a list of dataset names or mappings")
    specs = [_spec(entry, default_root, f"{key}[{i}]") for i, entry in enumerate(entries)]
    names = [s.name for s in specs]
    labelled = [s if s.label else DatasetSpec(s.name, s.root, s.options,
                                              s.name if names.count(s.name) == 1 else f"{s.name}:{Path(s.root).name}")
                for s in specs]
    labels = [s.label for s in labelled]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"{key}: several entries are labelled {repeated}; give them distinct roots or labels")
    return labelled


def single_spec(name: str, root: str, options: Mapping[str, Any]) -> DatasetSpec:
    """The one-dataset shorthand (data.name, data.root, data.options) as a spec labelled by its name."""
    return DatasetSpec(name, os.fspath(root), dict(options), name)


def training_specs(data: Any) -> list[DatasetSpec]:
    """What a data config section trains on: every entry of data.sources, else data.name at data.root."""
    if getattr(data, "sources", None):
        return dataset_specs(data.sources, default_root=data.root, key="data.sources")
    return [single_spec(data.name, data.root, data.options)]


def target_specs(cfg: Any) -> list[DatasetSpec]:
    """What a config evaluates on: every entry of test.targets, else the training datasets, each on its own."""
    if getattr(cfg.test, "targets", None):
        return dataset_specs(cfg.test.targets, default_root=cfg.data.root, key="test.targets")
    return training_specs(cfg.data)


class JointDataset(ImageDataset):
    """The union of several image datasets, identities and cameras offset so that they never collide."""

    def __init__(self, parts: Sequence[tuple[str, ImageDataset]]) -> None:
        train: list[Sample] = []
        test_ids: dict[tuple[int, int], int] = {}
        subsets: dict[str, list[Sample]] = {"query": [], "gallery": []}
        self.pid_ranges: dict[str, tuple[int, int]] = {}
        self.camid_ranges: dict[str, tuple[int, int]] = {}
        pid_offset = cam_offset = 0
        for index, (label, part) in enumerate(parts):
            cams = sorted({s[2] for subset in (part.train, part.query, part.gallery) for s in subset})
            cam = {c: cam_offset + i for i, c in enumerate(cams)}
            train += [(path, pid + pid_offset, cam[c]) for path, pid, c in part.train]
            for name in subsets:
                subsets[name] += [(path, test_ids.setdefault((index, pid), len(test_ids)), cam[c])
                                  for path, pid, c in getattr(part, name)]
            self.pid_ranges[label] = (pid_offset, pid_offset + part.num_train_pids)
            self.camid_ranges[label] = (cam_offset, cam_offset + len(cams))
            pid_offset, cam_offset = pid_offset + part.num_train_pids, cam_offset + len(cams)
        self.parts = list(parts)
        super().__init__(train, subsets["query"], subsets["gallery"], name=" + ".join(label for label, _ in parts),
                         root=parts[0][1].root)
        self.has_cameras = all(getattr(p, "has_cameras", True) for _, p in parts)
        protocols = {getattr(p, "eval_protocol", "market") for _, p in parts}
        self.eval_protocol = protocols.pop() if len(protocols) == 1 else "self"


def build_joint_dataset(specs: Sequence[DatasetSpec]) -> ImageDataset:
    """The dataset of one spec, or the JointDataset of several (image datasets only)."""
    from reidkit.data.video import VideoDataset

    parts = [(spec.label or spec.name, spec.build()) for spec in specs]
    if len(parts) == 1:
        return parts[0][1]
    video = [label for label, part in parts if isinstance(part, VideoDataset)]
    if video:
        raise ConfigError(f"data.sources: {', '.join(video)} hold video tracklets; joint training takes image "
                          "datasets (train on one video dataset with data.name)")
    return JointDataset(parts)


__all__ = ["DatasetSpec", "JointDataset", "build_joint_dataset", "dataset_specs", "single_spec", "target_specs",
           "training_specs"]
