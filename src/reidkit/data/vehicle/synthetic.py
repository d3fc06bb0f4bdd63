"""Synthetic vehicles in the VeRi-776 layout, so the whole vehicle pipeline runs without the real datasets.

Each identity has a type (body shape), a colour and identity details (accent stripe, roof item, rim and plate
colours). Each camera has its own background, lighting and viewing axis: "longitudinal" cameras see fronts or
rears, "lateral" ones see sides, so the orientation depends on the camera and the vehicle's direction. A
vehicle passing a camera gives one track of frames that grow as it approaches (crop areas range over the
15000 px high-quality bound of the post-processing). Same-camera images share background and lighting: that
is the bias the camera penalties of the post-processing remove.

Besides the VeRi files, `meta.json` records every image's type, colour, orientation, camera and size.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from reidkit.data.base import DATASETS
from reidkit.data.synthetic import materialize_once
from reidkit.data.vehicle.common import VehicleDataset
from reidkit.data.vehicle.veri import read_veri_layout
from reidkit.errors import DatasetError

TYPES = ("sedan", "hatchback", "suv", "truck", "bus")
COLOURS = {"white": (225, 225, 220), "black": (35, 35, 40), "red": (190, 35, 35), "blue": (40, 70, 170),
           "silver": (160, 165, 170), "yellow": (225, 190, 40), "green": (40, 130, 60), "brown": (120, 80, 45)}
ORIENTATIONS = ("front", "rear", "left", "right")
GLASS = (60, 80, 100)
META_FILE = "meta.json"
GENERATOR_VERSION = 1  # raise it when a change to the drawing changes the images: cached datasets are then refused


@dataclass(frozen=True)
class SyntheticVehicleConfig:
    num_train_ids: int = 40
    num_test_ids: int = 30
    num_cams: int = 6
    max_cams_per_id: int = 4
    min_frames: int = 3
    max_frames: int = 6
    queries_per_id: int = 2  # cameras of a test vehicle that also give one query image each
    min_size: int = 56  # crop height range (px) at the start of a track
    max_size: int = 112
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {"num_train_ids": self.num_train_ids >= 1, "num_test_ids": self.num_test_ids >= 1,
                  "num_cams": self.num_cams >= 2, "max_cams_per_id": 2 <= self.max_cams_per_id <= self.num_cams,
                  "min_frames": 1 <= self.min_frames <= self.max_frames,
                  "queries_per_id": self.queries_per_id >= 1,
                  "min_size": 16 <= self.min_size <= self.max_size}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise DatasetError(f"synthetic vehicles: invalid {', '.join(f'{k}={getattr(self, k)}' for k in bad)}; "
                               "expected ids >= 1, num_cams >= 2, 2 <= max_cams_per_id <= num_cams, "
                               "1 <= min_frames <= max_frames, queries_per_id >= 1, 16 <= min_size <= max_size")


@dataclass(frozen=True)
class Identity:
    pid: int
    vtype: str
    colour: str
    accent: tuple[int, int, int]
    stripe_y: float  # stripe position within the body, 0 = top
    roof_item: bool
    rim: tuple[int, int, int]
    plate: tuple[int, int, int]


@dataclass(frozen=True)
class Camera:
    index: int
    background: tuple[int, int, int]
    gain: float
    tint: tuple[float, float, float]
    axis: str  # "longitudinal" (front / rear views) or "lateral" (side views)
    lane_y: float


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(20, 236, size=3))


def make_identity(pid: int, rng: np.random.Generator) -> Identity:
    return Identity(pid=pid, vtype=str(rng.choice(TYPES)), colour=str(rng.choice(list(COLOURS))),
                    accent=_colour(rng), stripe_y=float(rng.uniform(0.25, 0.7)), roof_item=bool(rng.random() < 0.4),
                    rim=_colour(rng), plate=((230, 200, 40), (40, 90, 200), (235, 235, 235))[int(rng.integers(3))])


def make_camera(index: int, rng: np.random.Generator) -> Camera:
    return Camera(index=index, background=_colour(rng), gain=float(rng.uniform(0.7, 1.2)),
                  tint=tuple(float(t) for t in rng.uniform(0.85, 1.15, size=3)),
                  axis=("longitudinal", "lateral")[index % 2], lane_y=float(rng.uniform(0.1, 0.9)))


# --- drawing ----------------------------------------------------------------------------------------------------
# Coordinates are fractions of the crop; `box` scales them to pixels.

BODY_HEIGHT = {"sedan": 0.3, "hatchback": 0.32, "suv": 0.38, "truck": 0.36, "bus": 0.62}


def _box(w: int, h: int, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    return (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))


def _poly(w: int, h: int, points: list[tuple[float, float]]) -> list[tuple[int, int]]:
    return [(round(x * w), round(y * h)) for x, y in points]


def draw_side(draw: ImageDraw.ImageDraw, w: int, h: int, v: Identity) -> None:
    """A vehicle facing left (front at the left end)."""
    body = COLOURS[v.colour]
    ground, r = 0.86, 0.13 if v.vtype in ("truck", "bus") else 0.11
    top = ground - r * 0.4 - BODY_HEIGHT[v.vtype]
    draw.rectangle(_box(w, h, 0.05, top, 0.95, ground - r * 0.4), fill=body)
    if v.vtype == "bus":
        for x in np.arange(0.1, 0.9, 0.13):
            draw.rectangle(_box(w, h, x, top + 0.06, x + 0.09, top + 0.22), fill=GLASS)
    elif v.vtype == "truck":
        draw.rectangle(_box(w, h, 0.36, top - 0.3, 0.95, top), fill=v.accent)  # cargo box
        draw.polygon(_poly(w, h, [(0.07, top), (0.12, top - 0.25), (0.33, top - 0.25), (0.33, top)]), fill=body)
        draw.polygon(_poly(w, h, [(0.1, top), (0.14, top - 0.2), (0.3, top - 0.2), (0.3, top)]), fill=GLASS)
    else:
        back = {"sedan": 0.78, "hatchback": 0.88, "suv": 0.92}[v.vtype]
        slope = {"sedan": 0.08, "hatchback": 0.03, "suv": 0.02}[v.vtype]
        ch = 0.26 if v.vtype == "suv" else 0.22
        draw.polygon(_poly(w, h, [(0.2, top), (0.3, top - ch), (back - slope, top - ch), (back, top)]), fill=body)
        draw.polygon(_poly(w, h, [(0.25, top - 0.02), (0.32, top - ch + 0.04), (back - slope - 0.02, top - ch + 0.04),
                                  (back - 0.04, top - 0.02)]), fill=GLASS)
        if v.roof_item:
            draw.rectangle(_box(w, h, 0.35, top - ch - 0.05, back - 0.15, top - ch), fill=(30, 30, 30))
    stripe = top + v.stripe_y * BODY_HEIGHT[v.vtype]
    draw.rectangle(_box(w, h, 0.05, stripe, 0.95, stripe + 0.05), fill=v.accent)
    draw.rectangle(_box(w, h, 0.05, top + 0.04, 0.08, top + 0.1), fill=(250, 240, 170))  # head light
    draw.rectangle(_box(w, h, 0.92, top + 0.04, 0.95, top + 0.1), fill=(200, 20, 20))  # tail light
    for cx in (0.22, 0.78):
        draw.ellipse(_box(w, h, cx - r * h / w, ground - r, cx + r * h / w, ground + r), fill=(20, 20, 20))
        s = 0.5 * r
        draw.ellipse(_box(w, h, cx - s * h / w, ground - s, cx + s * h / w, ground + s), fill=v.rim)


def draw_end(draw: ImageDraw.ImageDraw, w: int, h: int, v: Identity, front: bool) -> None:
    """The vehicle seen from the front or from the rear."""
    body = COLOURS[v.colour]
    bottom = 0.88
    top = bottom - BODY_HEIGHT[v.vtype] - 0.06
    draw.rectangle(_box(w, h, 0.14, bottom - 0.05, 0.24, bottom + 0.06), fill=(20, 20, 20))  # tyres
    draw.rectangle(_box(w, h, 0.76, bottom - 0.05, 0.86, bottom + 0.06), fill=(20, 20, 20))
    draw.rectangle(_box(w, h, 0.1, top, 0.9, bottom), fill=body)
    if v.vtype == "bus":
        draw.rectangle(_box(w, h, 0.16, top + 0.05, 0.84, top + 0.3), fill=GLASS)
    else:
        roof = top - (0.3 if v.vtype == "truck" else 0.24)
        draw.polygon(_poly(w, h, [(0.14, top), (0.24, roof), (0.76, roof), (0.86, top)]),
                     fill=v.accent if v.vtype == "truck" and not front else body)
        inset = 0.05 if front else 0.1
        if front or v.vtype != "truck":
            draw.polygon(_poly(w, h, [(0.18 + inset, top - 0.01), (0.27 + inset, roof + 0.04),
                                      (0.73 - inset, roof + 0.04), (0.82 - inset, top - 0.01)]), fill=GLASS)
        if v.roof_item:
            draw.rectangle(_box(w, h, 0.3, roof - 0.05, 0.7, roof), fill=(30, 30, 30))
    stripe = top + v.stripe_y * (bottom - top)
    draw.rectangle(_box(w, h, 0.1, stripe, 0.9, stripe + 0.05), fill=v.accent)
    light = (250, 240, 170) if front else (210, 20, 20)
    ly = bottom - 0.2
    draw.rectangle(_box(w, h, 0.13, ly, 0.28, ly + 0.07), fill=light)
    draw.rectangle(_box(w, h, 0.72, ly, 0.87, ly + 0.07), fill=light)
    if front:
        draw.rectangle(_box(w, h, 0.34, ly, 0.66, ly + 0.08), fill=(40, 40, 40))  # grille
    draw.rectangle(_box(w, h, 0.4, bottom - 0.1, 0.6, bottom - 0.03), fill=v.plate)


def render(v: Identity, cam: Camera, orientation: str, height: int, rng: np.random.Generator) -> Image.Image:
    """One crop of vehicle `v` seen by `cam`; side views are 1.6x wider than tall, like detection boxes."""
    width = round(height * (1.6 if orientation in ("left", "right") else 1.0))
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = cam.background
    canvas += rng.normal(0.0, 12.0, size=(height, width, 1))  # road texture
    lane = int(cam.lane_y * height)
    canvas[lane:lane + max(1, height // 24)] = (235, 235, 235)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if orientation in ("left", "right"):
        draw_side(draw, width, height, v)
        if orientation == "right":
            layer = ImageOps.mirror(layer)
    else:
        draw_end(draw, width, height, v, front=orientation == "front")
    dx, dy = (int(d) for d in rng.integers(-height // 16, height // 16 + 1, size=2))
    img.paste(layer, (dx, dy), layer)
    lit = np.asarray(img, dtype=np.float32) * cam.gain * np.asarray(cam.tint, dtype=np.float32)
    lit += rng.normal(0.0, 6.0, size=lit.shape)
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))


# --- dataset --------------------------------------------------------------------------------------------------

def _orientation(cam: Camera, heading: int) -> str:
    return (("front", "rear") if cam.axis == "longitudinal" else ("left", "right"))[heading]


class _Writer:
    """Renders frames into the dataset folders, numbering frames and recording their metadata."""

    def __init__(self, base: Path, rng: np.random.Generator) -> None:
        self.base, self.rng = base, rng
        self.frame = 0
        self.meta: list[dict] = []

    def write(self, folder: str, identity: Identity, cam: Camera, orientation: str, height: int, k: int) -> str:
        self.frame += 5
        name = f"{identity.pid:04d}_c{cam.index + 1:03d}_{self.frame:08d}_{k}.jpg"
        img = render(identity, cam, orientation, height, self.rng)
        img.save(self.base / folder / name, quality=92)
        self.meta.append({"name": name, "split": folder, "pid": identity.pid, "cam": cam.index,
                          "type": identity.vtype, "colour": identity.colour, "orientation": orientation,
                          "width": img.width, "height": img.height})
        return name


def _generate(base: Path, cfg: SyntheticVehicleConfig) -> dict[str, int]:
    rng = np.random.default_rng(cfg.seed)
    cams = [make_camera(i, rng) for i in range(cfg.num_cams)]
    identities = [make_identity(pid, rng) for pid in range(1, cfg.num_train_ids + cfg.num_test_ids + 1)]
    for folder in ("image_train", "image_query", "image_test"):
        (base / folder).mkdir(parents=True)
    writer = _Writer(base, rng)
    lists: dict[str, list[str]] = {"train": [], "query": [], "test": []}
    test_tracks: list[list[str]] = []
    for identity in identities:
        is_train = identity.pid <= cfg.num_train_ids
        n = int(rng.integers(2, cfg.max_cams_per_id + 1))
        for rank, cam_index in enumerate(sorted(rng.choice(cfg.num_cams, size=n, replace=False))):
            cam = cams[int(cam_index)]
            # One pass of the vehicle in front of the camera: a fixed orientation, crops growing as it nears.
            orientation = _orientation(cam, int(rng.integers(2)))
            size = int(rng.integers(cfg.min_size, cfg.max_size + 1))
            num_frames = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
            folder = "image_train" if is_train else "image_test"
            track = [writer.write(folder, identity, cam, orientation, round(size * (1 + 0.08 * k)), k)
                     for k in range(num_frames)]
            lists["train" if is_train else "test"] += track
            if not is_train:
                test_tracks.append(track)
                if rank < cfg.queries_per_id:  # the query: the pass's next frame, kept out of the gallery
                    lists["query"].append(writer.write("image_query", identity, cam, orientation,
                                                       round(size * (1 + 0.08 * num_frames)), num_frames))
    for split, names in lists.items():
        (base / f"name_{split}.txt").write_text("\n".join(names) + "\n")
    # VeRi layout: each line is a track key (vehicle_camera) followed by the track's image names.
    (base / "test_track.txt").write_text("".join(f"{t[0][:9]} {' '.join(t)} \n" for t in test_tracks))
    (base / META_FILE).write_text(json.dumps({"images": writer.meta}, indent=1))
    return {split: len(names) for split, names in lists.items()}


def make_synthetic_vehicles(root: str | os.PathLike, config: SyntheticVehicleConfig = SyntheticVehicleConfig()
                            ) -> Path:
    """Generate the dataset into `root` (a VeRi-layout folder) unless it is already there with this config
    and generator version (`materialize_once`: a folder of other options, or not generated, is refused)."""
    params = {"version": GENERATOR_VERSION, **asdict(config)}
    return materialize_once(Path(root), params, lambda folder: _generate(folder, config),
                            "reidkit's synthetic vehicle generator")


def read_meta(root: str | os.PathLike) -> dict[str, dict]:
    """Per-image metadata keyed by image name."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist; generate the data with make_synthetic_vehicles")
    return {m["name"]: m for m in json.loads(path.read_text())["images"]}


@DATASETS.register("synthetic_vehicles")
class SyntheticVehicles(VehicleDataset):
    """Generated on first use into <root>/synthetic_vehicles (options: the SyntheticVehicleConfig fields),
    then read like VeRi-776, tracks included."""

    option_targets = (SyntheticVehicleConfig,)

    def __init__(self, root: str | os.PathLike, **options: object) -> None:
        fields = {f.name for f in dataclasses.fields(SyntheticVehicleConfig)}
        config = SyntheticVehicleConfig(**{k: v for k, v in options.items() if k in fields})
        base = make_synthetic_vehicles(Path(root) / "synthetic_vehicles", config)
        subsets, tracks = read_veri_layout(base)
        super().__init__(subsets["train"], subsets["query"], subsets["gallery"], gallery_tracks=tracks,
                         name="synthetic-vehicles", root=base, **{k: v for k, v in options.items() if k not in fields})
