"""Synthetic video re-ID data in the MARS layout, with a MARS attribute CSV that matches what is drawn.

Each tracklet is one synthetic person (reidkit.data.synthetic: Identity, Camera, draw_person) passing one
camera: the background is fixed for the tracklet, the walking cycle advances and the person moves from frame to
frame (walking, running or standing still), the camera's lighting, blur and noise apply to every frame.
Identities appear under 2..num_cams cameras.

MARS attributes and how they are drawn (attributes not drawn keep a constant label, listed in CONSTANT):
- ID-irrelevant, per tracklet: action (0 walking, 1 standing, 2 running), angle (the view: 0 front, 1 back,
  2 left, 3 right), occlusion (a static object in front of the person: a pole or a low object hiding the
  legs), cut (the person partly outside the frame).
- ID-relevant, per identity: upcolor / downcolor (colour family of the top / bottom, COLOUR_FAMILIES), up
  (0 long, 1 short sleeves), down (0 long, 1 short lower clothing), bag (shoulder bag), backpack, hat, handbag,
  hair (0 short or bald, 1 long), btype (0 trousers or shorts, 1 skirt).

    generate_video_dataset(root, num_ids=40)   # writes root/MARS/ and returns it
    build_dataset("synthetic_video", root)     # the same, then read as MARS (attributes included)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from reidkit.data.base import DATASETS
from reidkit.data.synthetic import Camera, Identity, draw_person, materialize_once
from reidkit.data.video.attributes import MARS_ATTRIBUTES
from reidkit.data.video.mars import Mars
from reidkit.errors import ConfigError
from reidkit.utils.io import atomic_write_text

FOLDER = "MARS"
GENERATOR_VERSION = 1
ACTIONS = {"walking": 0, "standing": 1, "running": 2}
ANGLES = {"front": 0, "back": 1, "left": 2, "right": 3}
# MARS colour classes, and the family of each synthetic palette colour.
COLOUR_FAMILIES = ("black", "white", "red", "purple", "yellow", "grey", "blue", "green", "brown")
PALETTE_FAMILY = {"black": "black", "white": "white", "grey": "grey", "red": "red", "dark_red": "red",
                  "pink": "red", "blue": "blue", "navy": "blue", "light_blue": "blue", "green": "green",
                  "olive": "green", "yellow": "yellow", "orange": "yellow", "purple": "purple", "brown": "brown",
                  "beige": "brown"}
CONSTANT = {"multi_person": 0, "back_dominant": 0, "target_change": 0, "target_miss": 0, "wrong_target": 0,
            "age": 1, "gender": 0}
# Per frame: walking-cycle advance and sideways motion (in frame widths) of each action.
MOTION = {"walking": (0.12, 0.02), "standing": (0.0, 0.0), "running": (0.25, 0.045)}


@dataclass(frozen=True)
class SyntheticVideoConfig:
    num_ids: int = 40
    num_cams: int = 4
    tracklets_per_cam: tuple[int, int] = (1, 2)
    frames: tuple[int, int] = (6, 12)
    height: int = 64
    width: int = 32
    train_fraction: float = 0.5
    num_distractors: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "num_ids": 2 <= self.num_ids <= 9999, "num_cams": 2 <= self.num_cams <= 9,
            "tracklets_per_cam": 1 <= self.tracklets_per_cam[0] <= self.tracklets_per_cam[1],
            "frames": 1 <= self.frames[0] <= self.frames[1] <= 999,
            "height": self.height >= 16, "width": self.width >= 16, "train_fraction": 0 < self.train_fraction < 1,
            "num_distractors": self.num_distractors >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"synthetic video: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}; "
                              "expected 2 <= num_ids <= 9999, 2 <= num_cams <= 9, 1 <= low <= high for "
                              "tracklets_per_cam and frames (at most 999), height and width >= 16, "
                              "0 < train_fraction < 1, num_distractors >= 0")


@dataclass(frozen=True)
class TrackletPlan:
    """One tracklet to draw: who (pid, index into the identities), where (camera) and how it moves."""

    subset: str  # "train" or "test"
    pid: int
    identity: int
    cam: int
    track: int
    num_frames: int
    view: str
    action: str
    occluded: bool
    cut: bool
    query: bool = False


def identity_labels(identity: Identity) -> dict[str, int]:
    """The ID-relevant MARS attributes of what draw_person draws for `identity`."""
    return {
        "upcolor": COLOUR_FAMILIES.index(PALETTE_FAMILY[identity.upper]),
        "downcolor": COLOUR_FAMILIES.index(PALETTE_FAMILY[identity.lower]),
        "up": int(identity.sleeves == "short"), "down": int(identity.lower_style != "trousers"),
        "bag": int(identity.bag == "shoulder"), "backpack": int(identity.bag == "backpack"),
        "hat": int(identity.hat != "none"), "handbag": int(identity.bag == "handbag"),
        "hair": int(identity.hair == "long"), "btype": int(identity.lower_style == "skirt"),
    }


def tracklet_labels(plan: TrackletPlan, identity: Identity) -> list[int]:
    """All 21 MARS attributes of a tracklet, in the schema's order."""
    values = {**CONSTANT, **identity_labels(identity), "action": ACTIONS[plan.action], "angle": ANGLES[plan.view],
              "occlusion": int(plan.occluded), "cut": int(plan.cut)}
    return [values[name] for _, name, _ in MARS_ATTRIBUTES.attributes]


def plan_tracklets(cfg: SyntheticVideoConfig, cameras: list[Camera], rng: np.random.Generator) -> list[TrackletPlan]:
    """Every tracklet: training identities go to bbox_train; each test identity gives one query (a tracklet of
    one of its cameras), its other tracklets (under that camera and at least one other) form the gallery."""
    num_train = min(cfg.num_ids - 1, max(1, round(cfg.num_ids * cfg.train_fraction)))
    train_ids = set(rng.permutation(cfg.num_ids)[:num_train].tolist())
    plans = []
    tracks: dict[int, int] = {}  # per pid: MARS numbers tracklets per person (all distractors are person 0)
    for index in range(cfg.num_ids + cfg.num_distractors):
        distractor = index >= cfg.num_ids
        subset = "train" if index in train_ids else "test"
        num_cams = 1 if distractor else int(rng.integers(2, cfg.num_cams + 1))
        pid = 0 if distractor else index + 1
        cams = sorted(rng.permutation(cfg.num_cams)[:num_cams].tolist())
        query_cam = int(rng.choice(cams)) if subset == "test" and not distractor else None
        for cam in cams:
            for k in range(int(rng.integers(cfg.tracklets_per_cam[0], cfg.tracklets_per_cam[1] + 1))):
                tracks[pid] = track = tracks.get(pid, 0) + 1
                plans.append(TrackletPlan(
                    subset=subset, pid=pid, identity=index, cam=cam, track=track,
                    num_frames=int(rng.integers(cfg.frames[0], cfg.frames[1] + 1)),
                    view=cameras[cam].sample_view(rng), action=str(rng.choice(list(ACTIONS), p=[0.6, 0.2, 0.2])),
                    occluded=bool(rng.random() < cameras[cam].occlusion), cut=bool(rng.random() < 0.15),
                    query=cam == query_cam and k == 0))
    return plans


def static_occluder(camera: Camera, size: tuple[int, int],
                    rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int]]:
    """A scene object in front of the person, fixed in the frame for the whole tracklet (a pole, or a low
    object hiding the legs), already seen through the camera: (patch, top-left corner)."""
    height, width = size
    if rng.random() < 0.5:
        w = max(2, round(width * rng.uniform(0.12, 0.22)))
        box = (round(width / 2 + rng.uniform(-0.3, 0.3) * width - w / 2), 0, w, height)
    else:
        top = round(height * rng.uniform(0.62, 0.8))
        left = round(width * rng.uniform(-0.2, 0.2))
        box = (left, top, round(width * rng.uniform(0.8, 1.2)), height - top)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    patch = camera.develop(Image.new("RGB", (box[2], box[3]), colour), rng)
    return patch, (box[0], box[1])


def render_tracklet(plan: TrackletPlan, identity: Identity, camera: Camera, size: tuple[int, int],
                    seed: int) -> list[Image.Image]:
    """The frames of one tracklet: one background and (if occluded) one occluder, a continuous walking cycle and
    motion, per-frame camera noise and brightness."""
    height, width = size
    rng = np.random.default_rng([seed, plan.identity, plan.cam, plan.track])
    background = camera.background(size, rng)
    phase, step = float(rng.random()), MOTION[plan.action][0]
    direction = {"left": -1, "right": 1}.get(plan.view, int(rng.choice([-1, 1])))
    speed = MOTION[plan.action][1] * width * direction
    # A cut tracklet is shifted by 35% of the width: part of the person is outside the frame.
    offset = float(rng.choice([-1, 1])) * 0.35 * width if plan.cut else float(rng.uniform(-0.08, 0.08)) * width
    occluder = static_occluder(camera, size, rng) if plan.occluded else None
    frames = []
    for f in range(plan.num_frames):
        frame_rng = np.random.default_rng([seed, plan.identity, plan.cam, plan.track, f])
        dx = offset + speed * (f - plan.num_frames / 2)
        frame = draw_person(identity, camera, frame_rng, pose_phase=phase + step * f,
                            shift=(dx, 0.01 * height * np.sin(f)), size=size, view=plan.view, background=background,
                            occlude=False)
        if occluder is not None:
            frame.paste(*occluder)
        frames.append(frame)
    return frames


def _write(folder: Path, cfg: SyntheticVideoConfig) -> dict[str, int]:
    rng = np.random.default_rng(cfg.seed)
    cameras = [Camera.sample(i, rng) for i in range(cfg.num_cams)]
    identities = [Identity.sample(rng) for _ in range(cfg.num_ids + cfg.num_distractors)]
    plans = plan_tracklets(cfg, cameras, rng)
    names: dict[str, list[str]] = {"train": [], "test": []}
    tables: dict[str, list[list[int]]] = {"train": [], "test": []}
    query_rows, csv_rows = [], ["person_id,camera_id,tracklets_id," + ",".join(n for _, n, _ in MARS_ATTRIBUTES.attributes)]
    for plan in plans:
        home = folder / ("bbox_train" if plan.subset == "train" else "bbox_test") / f"{plan.pid:04d}"
        home.mkdir(parents=True, exist_ok=True)
        start = len(names[plan.subset]) + 1
        for f, image in enumerate(render_tracklet(plan, identities[plan.identity], cameras[plan.cam],
                                                  (cfg.height, cfg.width), cfg.seed), start=1):
            name = f"{plan.pid:04d}C{plan.cam + 1}T{plan.track:04d}F{f:03d}.jpg"
            image.save(home / name, quality=92)
            names[plan.subset].append(name)
        tables[plan.subset].append([start, len(names[plan.subset]), plan.pid, plan.cam + 1])
        if plan.query:
            query_rows.append(len(tables["test"]))  # 1-based row of the test table
        labels = tracklet_labels(plan, identities[plan.identity])
        csv_rows.append(",".join(map(str, [plan.pid, plan.cam + 1, plan.track, *labels])))
    info = folder / "info"
    info.mkdir()
    for subset in ("train", "test"):
        atomic_write_text(info / f"{subset}_name.txt", "\n".join(names[subset]) + "\n")
        scipy.io.savemat(info / f"tracks_{subset}_info.mat",
                         {f"track_{subset}_info": np.array(tables[subset], dtype=np.int32)})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([query_rows], dtype=np.int32)})
    (folder / "mars_attributes.csv").write_bytes(("\n".join(csv_rows) + "\n").encode("gbk"))
    return {"train_tracklets": len(tables["train"]), "test_tracklets": len(tables["test"]),
            "queries": len(query_rows), "frames": len(names["train"]) + len(names["test"])}


def generate_video_dataset(root: str | os.PathLike, **options: object) -> Path:
    """Write `<root>/MARS/` (options: SyntheticVideoConfig fields) and return it; a second call with the same
    options does nothing. A folder there holding other options (or not generated) is refused, never replaced."""
    cfg = SyntheticVideoConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})  # type: ignore[arg-type]
    params = {"version": GENERATOR_VERSION, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}
    return materialize_once(Path(root).expanduser() / FOLDER, params, lambda folder: _write(folder, cfg),
                            "reidkit's synthetic video generator")


@DATASETS.register("synthetic_video")
class SyntheticVideo(Mars):
    """Synthetic tracklets generated under root on first use (options: SyntheticVideoConfig), read as MARS."""

    display_name = "synthetic video (MARS layout)"
    option_targets = (SyntheticVideoConfig,)

    def __init__(self, root: str | os.PathLike, *, verify_images: bool = False, skip_bad_images: bool = False,
                 **generator_options: object) -> None:
        folder = generate_video_dataset(root, **generator_options)
        super().__init__(folder, verify_images=verify_images, skip_bad_images=skip_bad_images)
