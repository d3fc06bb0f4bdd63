"""Procedurally drawn people: a learnable, not trivial, re-identification dataset made in seconds.

An `Identity` is a sampled appearance (clothing colours and pattern, sleeves, trousers/shorts/skirt, hair, hat,
bag, height and build). A `Camera` is a sampled viewing condition (colour cast and brightness, contrast, wall
and floor, clutter, person scale, preferred viewpoints, blur, noise, occlusion rate). `draw_person` renders one
identity seen by one camera; `pose_phase` (walking cycle, 0..1) and `shift` let video code draw tracklets.
`generate_market_dataset` writes a complete Market-1501 layout that `build_dataset("market1501", root)` reads.

Identities share a small palette, so many agree on one or two attributes (what separates them is the combination),
and camera colour casts push colours into each other: raw pixels match poorly, a trained network well.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from reidkit.errors import ConfigError, DatasetError
from reidkit.utils.io import atomic_write_json, honour_umask

RGB = tuple[int, int, int]

PALETTE: dict[str, RGB] = {
    "black": (28, 28, 32), "white": (232, 232, 226), "grey": (128, 128, 132), "red": (188, 32, 38),
    "dark_red": (118, 24, 34), "blue": (38, 72, 178), "navy": (28, 36, 84), "light_blue": (122, 168, 218),
    "green": (42, 138, 62), "olive": (108, 112, 52), "yellow": (224, 198, 52), "orange": (228, 122, 34),
    "pink": (228, 142, 172), "purple": (108, 52, 138), "brown": (108, 70, 42), "beige": (198, 178, 140),
}
# Trousers come in few colours, so many identities share them.
LOWER_COLORS = ("black", "navy", "blue", "grey", "brown", "beige", "black", "navy", "white", "olive")
PATTERNS = ("solid", "solid", "hstripes", "vstripes", "checks", "logo", "two_tone")
HAIR_COLORS: dict[str, RGB] = {"black": (22, 20, 20), "brown": (82, 52, 30), "blond": (200, 170, 100),
                               "grey": (150, 150, 150), "auburn": (130, 50, 30)}
SKIN_TONES: tuple[RGB, ...] = ((240, 200, 170), (222, 176, 140), (190, 140, 100), (140, 96, 66), (96, 64, 44))
BAGS = ("none", "none", "backpack", "shoulder", "handbag")
HATS = ("none", "none", "none", "cap", "beanie")
VIEWS = ("front", "back", "left", "right")
MARKET_FOLDER = "Market-1501-v15.09.15"
MANIFEST = "synthetic_manifest.json"
GENERATOR_VERSION = 1
_CHANNEL_OFFSETS = np.array([0, 256, 512], dtype=np.intp)  # rows of a flattened 3 x 256 lookup table


def _jitter(rgb: RGB, rng: np.random.Generator, sigma: float = 10.0) -> RGB:
    # Plain Python: numpy's per-call overhead dominates on three values.
    return tuple(min(255, max(0, int(v + d))) for v, d in zip(rgb, rng.normal(0.0, sigma, 3).tolist()))  # type: ignore


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


@dataclass(frozen=True)
class Identity:
    """One person's appearance; names are categorical attributes, *_rgb the colours actually drawn."""

    upper: str
    upper_rgb: RGB
    pattern: str
    pattern_rgb: RGB
    sleeves: str
    lower: str
    lower_rgb: RGB
    lower_style: str
    shoes_rgb: RGB
    skin_rgb: RGB
    hair: str
    hair_color: str
    hair_rgb: RGB
    hat: str
    hat_rgb: RGB
    bag: str
    bag_rgb: RGB
    height: float  # relative to the camera's person scale
    build: float  # width factor

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Identity":
        upper, second, lower = _pick(list(PALETTE), rng), _pick(list(PALETTE), rng), _pick(LOWER_COLORS, rng)
        hair_color = _pick(list(HAIR_COLORS), rng)
        return cls(
            upper=upper, upper_rgb=_jitter(PALETTE[upper], rng), pattern=_pick(PATTERNS, rng),
            pattern_rgb=_jitter(PALETTE[second], rng), sleeves=_pick(("long", "short"), rng),
            lower=lower, lower_rgb=_jitter(PALETTE[lower], rng),
            lower_style=_pick(("trousers", "trousers", "trousers", "shorts", "skirt"), rng),
            shoes_rgb=_jitter(PALETTE[_pick(("black", "white", "brown", "grey"), rng)], rng),
            skin_rgb=_jitter(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], rng, 6.0),
            hair=_pick(("short", "short", "long", "bald"), rng), hair_color=hair_color,
            hair_rgb=_jitter(HAIR_COLORS[hair_color], rng, 6.0), hat=_pick(HATS, rng),
            hat_rgb=_jitter(PALETTE[_pick(list(PALETTE), rng)], rng), bag=_pick(BAGS, rng),
            bag_rgb=_jitter(PALETTE[_pick(list(PALETTE), rng)], rng),
            height=float(rng.uniform(0.86, 1.0)), build=float(rng.uniform(0.8, 1.2)))

    def attributes(self) -> dict[str, str]:
        """The categorical attributes (for attribute-aware models)."""
        return {"upper": self.upper, "pattern": self.pattern, "sleeves": self.sleeves, "lower": self.lower,
                "lower_style": self.lower_style, "hair": self.hair, "hair_color": self.hair_color,
                "hat": self.hat, "bag": self.bag}


@dataclass(frozen=True)
class Camera:
    """One camera's viewing conditions; `develop` applies its lighting and optics to a drawn image."""

    index: int
    gain: tuple[float, float, float]  # per-channel: colour cast times brightness
    contrast: float
    gamma: float
    wall_rgb: RGB
    floor_rgb: RGB
    horizon: float  # where the floor starts, as a fraction of the height
    clutter: int  # background objects per image
    scale: float  # person height as a fraction of the image height
    view_weights: tuple[float, float, float, float]  # front, back, left, right
    blur: float  # > 1: the image is seen at 1/blur resolution
    noise: float
    occlusion: float  # probability that something hides part of the person

    @classmethod
    def sample(cls, index: int, rng: np.random.Generator) -> "Camera":
        cast = rng.uniform(0.72, 1.28, 3)
        views = rng.dirichlet(np.full(4, 0.6))
        return cls(index=index, gain=tuple(float(g) for g in cast * rng.uniform(0.7, 1.2)),  # type: ignore
                   contrast=float(rng.uniform(0.65, 1.2)), gamma=float(rng.uniform(0.75, 1.35)),
                   wall_rgb=tuple(int(v) for v in rng.integers(40, 220, 3)),  # type: ignore
                   floor_rgb=tuple(int(v) for v in rng.integers(40, 200, 3)),  # type: ignore
                   horizon=float(rng.uniform(0.45, 0.85)), clutter=int(rng.integers(1, 6)),
                   scale=float(rng.uniform(0.72, 0.95)), view_weights=tuple(float(v) for v in views),  # type: ignore
                   blur=float(rng.choice([1.0, 1.0, 1.6, 2.2])), noise=float(rng.uniform(0.01, 0.05)),
                   occlusion=float(rng.uniform(0.1, 0.4)))

    def sample_view(self, rng: np.random.Generator) -> str:
        cumulative = np.cumsum(self.view_weights)
        return VIEWS[min(len(VIEWS) - 1, int(np.searchsorted(cumulative, rng.random() * cumulative[-1])))]

    def background(self, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
        """Wall with a vertical gradient, floor, and random clutter (signs, windows, plants)."""
        height, width = size
        horizon = int(height * np.clip(self.horizon + rng.normal(0, 0.04), 0.3, 0.95))
        shade = np.linspace(0.8, 1.1, height)[:, None]
        column = np.clip(np.asarray(_jitter(self.wall_rgb, rng, 8.0)) * shade, 0, 255).astype(np.uint8)
        column[horizon:] = _jitter(self.floor_rgb, rng, 8.0)
        canvas = np.repeat(column[:, None, :], width, axis=1)
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        for _ in range(self.clutter):
            x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(0.0, 0.9) * height
            w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.05, 0.4) * height
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        return image

    def develop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Optics (a low-resolution camera's softness), lighting (gamma, contrast, colour cast, per-shot
        brightness) and sensor noise."""
        if self.blur > 1:
            small = (max(1, round(image.width / self.blur)), max(1, round(image.height / self.blur)))
            image = image.resize(small, Image.BILINEAR).resize(image.size, Image.BILINEAR)
        levels = np.arange(256, dtype=np.float32) / 255.0
        curve = (levels ** self.gamma - 0.5) * self.contrast + 0.5
        gain = np.asarray(self.gain, dtype=np.float32) * rng.uniform(0.85, 1.15)
        # One lookup table per channel applies the whole tone curve at once.
        table = np.clip(np.outer(gain, curve) * 255.0, 0, 255).astype(np.uint8)
        pixels = np.take(table.ravel(), np.asarray(image) + _CHANNEL_OFFSETS).astype(np.int16)
        # Uniform noise of the same spread as Gaussian noise of std `noise`, at a third of the cost.
        spread = max(1, round(self.noise * 255.0 * math.sqrt(3.0)))
        pixels += rng.integers(-spread, spread + 1, pixels.shape, dtype=np.int16)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@dataclass
class _Figure:
    """Where the body parts go in one image, in pixels."""

    cx: float
    top: float
    unit: float  # person height
    half_torso: float
    view: str
    swing: float  # -1..1, the walking cycle

    def y(self, fraction: float) -> float:
        return self.top + fraction * self.unit

    @property
    def facing(self) -> int:
        return {"left": -1, "right": 1}.get(self.view, 0)


def _draw_legs(draw: ImageDraw.ImageDraw, fig: _Figure, who: Identity) -> None:
    hip, knee, ankle, foot = fig.y(0.52), fig.y(0.74), fig.y(0.96), fig.y(1.0)
    leg_w = fig.half_torso * (0.8 if fig.facing else 0.85)
    for side in (-1, 1):
        stride = fig.swing * side * fig.unit * (0.12 if fig.facing else 0.03)
        x_hip = fig.cx + (0 if fig.facing else side * fig.half_torso * 0.5)
        x_foot = x_hip + stride
        lower_end = {"trousers": ankle, "shorts": fig.y(0.66), "skirt": hip}[who.lower_style]
        draw.line((x_hip, hip, x_foot, ankle), fill=who.skin_rgb, width=max(1, int(leg_w * 0.8)))
        ratio = (lower_end - hip) / (ankle - hip)
        draw.line((x_hip, hip, x_hip + stride * ratio, lower_end), fill=who.lower_rgb, width=max(1, int(leg_w)))
        toe = fig.facing * fig.unit * 0.05
        draw.rectangle((min(x_foot, x_foot + toe) - leg_w / 2, ankle, max(x_foot, x_foot + toe) + leg_w / 2, foot),
                       fill=who.shoes_rgb)
    if who.lower_style == "skirt":
        spread = fig.half_torso * 1.3
        draw.polygon([(fig.cx - fig.half_torso, hip), (fig.cx + fig.half_torso, hip),
                      (fig.cx + spread, knee), (fig.cx - spread, knee)], fill=who.lower_rgb)


def _draw_pattern(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], who: Identity,
                  view: str) -> None:
    x0, y0, x1, y1 = box
    step = max(2.0, (y1 - y0) / 6)
    if who.pattern == "hstripes":
        for y in np.arange(y0 + step / 2, y1, step):
            draw.rectangle((x0, y, x1, y + step / 2), fill=who.pattern_rgb)
    elif who.pattern == "vstripes":
        for x in np.arange(x0 + step / 2, x1, step):
            draw.rectangle((x, y0, x + step / 2, y1), fill=who.pattern_rgb)
    elif who.pattern == "checks":
        for i, y in enumerate(np.arange(y0, y1, step)):
            for x in np.arange(x0 + (i % 2) * step, x1, 2 * step):
                draw.rectangle((x, y, min(x + step, x1), min(y + step, y1)), fill=who.pattern_rgb)
    elif who.pattern == "two_tone":
        draw.rectangle((x0, (y0 + y1) / 2, x1, y1), fill=who.pattern_rgb)
    elif who.pattern == "logo" and view == "front":  # a print on the chest, invisible from behind
        cx, cy, r = (x0 + x1) / 2, y0 + (y1 - y0) * 0.35, (x1 - x0) * 0.22
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=who.pattern_rgb)


def _draw_bag(draw: ImageDraw.ImageDraw, fig: _Figure, who: Identity, *, behind: bool) -> None:
    """Backpacks show fully from behind and as a strap from the front; side bags hang at the hip."""
    shoulder, hip, ht = fig.y(0.17), fig.y(0.5), fig.half_torso
    if who.bag == "backpack":
        if fig.view == "back" and not behind:
            draw.rectangle((fig.cx - ht * 0.8, shoulder, fig.cx + ht * 0.8, fig.y(0.45)), fill=who.bag_rgb)
        elif fig.facing and behind:
            x = fig.cx - fig.facing * ht
            draw.rectangle((x - ht * 0.6, shoulder, x + ht * 0.6, fig.y(0.45)), fill=who.bag_rgb)
        elif fig.view == "front" and not behind:
            for side in (-1, 1):
                draw.line((fig.cx + side * ht * 0.6, shoulder, fig.cx + side * ht * 0.6, fig.y(0.35)),
                          fill=who.bag_rgb, width=max(1, int(ht * 0.2)))
    elif who.bag in ("shoulder", "handbag") and not behind:
        side = 1 if fig.view != "left" else -1
        x, top = fig.cx + side * ht * 1.2, hip - fig.unit * (0.06 if who.bag == "shoulder" else -0.02)
        size = fig.unit * (0.11 if who.bag == "shoulder" else 0.08)
        if who.bag == "shoulder":
            draw.line((fig.cx - side * ht * 0.7, shoulder, x, top), fill=who.bag_rgb, width=max(1, int(ht * 0.15)))
        draw.rectangle((x - size / 2, top, x + size / 2, top + size), fill=who.bag_rgb)


def _draw_upper_body(draw: ImageDraw.ImageDraw, fig: _Figure, who: Identity) -> None:
    shoulder, hip, ht = fig.y(0.15), fig.y(0.53), fig.half_torso
    box = (fig.cx - ht, shoulder, fig.cx + ht, hip)
    draw.rounded_rectangle(box, radius=ht * 0.3, fill=who.upper_rgb)
    _draw_pattern(draw, box, who, fig.view)
    arm_w = max(1, int(fig.unit * 0.06))
    sides = (fig.facing,) if fig.facing else (-1, 1)
    for side in sides:
        x = fig.cx + (side * ht * 0.95 if not fig.facing else 0)
        hand = (x + fig.swing * -side * fig.unit * 0.1 + (0 if fig.facing else side * ht * 0.15), fig.y(0.5))
        elbow = ((x + hand[0]) / 2, (shoulder + hand[1]) / 2)
        sleeve_end = elbow if who.sleeves == "short" else hand
        draw.line((x, shoulder + arm_w / 2, *hand), fill=who.skin_rgb, width=arm_w)
        draw.line((x, shoulder + arm_w / 2, *sleeve_end), fill=who.upper_rgb, width=arm_w)


def _draw_head(draw: ImageDraw.ImageDraw, fig: _Figure, who: Identity) -> None:
    r = fig.unit * 0.065
    cx, cy = fig.cx + fig.facing * r * 0.2, fig.y(0.075)
    draw.ellipse((cx - r, cy - r * 1.1, cx + r, cy + r * 1.1), fill=who.skin_rgb)
    if who.hair != "bald":
        long_hair = fig.y(0.2) if who.hair == "long" else cy
        if fig.view == "back":  # the back of the head is all hair
            draw.ellipse((cx - r, cy - r * 1.1, cx + r, cy + r * 1.1), fill=who.hair_rgb)
            draw.rectangle((cx - r, cy, cx + r, long_hair), fill=who.hair_rgb)
        else:
            draw.chord((cx - r, cy - r * 1.15, cx + r, cy + r), 180, 360, fill=who.hair_rgb)
            if who.hair == "long":
                x = cx - fig.facing * r * 0.7
                draw.rectangle((x - r * 0.5, cy - r * 0.2, x + r * 0.5, long_hair), fill=who.hair_rgb)
    if who.hat == "cap":
        draw.chord((cx - r * 1.05, cy - r * 1.25, cx + r * 1.05, cy + r * 0.4), 180, 360, fill=who.hat_rgb)
        brim = fig.facing * r * 1.6 if fig.facing else 0
        draw.rectangle((cx + min(0, brim) - r * 0.3, cy - r * 0.5, cx + max(0, brim) + r * 0.3, cy - r * 0.25),
                       fill=who.hat_rgb)
    elif who.hat == "beanie":
        draw.chord((cx - r * 1.05, cy - r * 1.3, cx + r * 1.05, cy + r * 0.2), 180, 360, fill=who.hat_rgb)
        draw.rectangle((cx - r * 1.05, cy - r * 0.45, cx + r * 1.05, cy - r * 0.1), fill=who.hat_rgb)


def _draw_occluder(draw: ImageDraw.ImageDraw, fig: _Figure, size: tuple[int, int], rng: np.random.Generator) -> None:
    """A pole, an object in front of the legs, or a passer-by at one side."""
    height, width = size
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    kind = int(rng.integers(3))
    if kind == 0:
        x, w = fig.cx + rng.uniform(-0.6, 0.6) * fig.half_torso * 2, width * rng.uniform(0.08, 0.2)
        draw.rectangle((x - w / 2, 0, x + w / 2, height), fill=color)
    elif kind == 1:
        top = fig.y(rng.uniform(0.55, 0.8))
        draw.rectangle((rng.uniform(-0.3, 0.2) * width, top, rng.uniform(0.8, 1.3) * width, height), fill=color)
    else:
        side = rng.choice([-1, 1])
        edge = fig.cx + side * fig.half_torso * rng.uniform(0.0, 1.2)
        x0, x1 = (edge, width * 1.5) if side > 0 else (-width * 0.5, edge)
        draw.rounded_rectangle((x0, fig.y(rng.uniform(0.1, 0.4)), x1, height), radius=width * 0.1, fill=color)


def draw_person(identity: Identity, camera: Camera, rng: np.random.Generator, *, pose_phase: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0), size: tuple[int, int] = (128, 64), view: str | None = None,
                background: Image.Image | None = None, occlude: bool | None = None) -> Image.Image:
    """`identity` as seen by `camera`: an RGB image of `size` (height, width).

    pose_phase: position in the walking cycle (0..1, periodic). shift: (dx, dy) in pixels from the sampled
    position. view: "front", "back", "left" or "right" (default: sampled from the camera's preferences).
    background: reuse one background for a tracklet (default: a new one from the camera). occlude: force an
    occluder on or off (default: the camera's occlusion rate).
    """
    height, width = size
    view = view or camera.sample_view(rng)
    if view not in VIEWS:
        raise ConfigError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    image = background.copy() if background is not None else camera.background(size, rng)
    unit = height * camera.scale * identity.height * rng.uniform(0.95, 1.05)
    fig = _Figure(cx=width / 2 + shift[0] + rng.normal(0, width * 0.04),
                  top=(height - unit) / 2 + shift[1] + rng.normal(0, height * 0.025), unit=unit,
                  half_torso=unit * 0.13 * identity.build * (0.65 if view in ("left", "right") else 1.0),
                  view=view, swing=math.sin(2 * math.pi * pose_phase))
    draw = ImageDraw.Draw(image)
    _draw_bag(draw, fig, identity, behind=True)
    _draw_legs(draw, fig, identity)
    _draw_upper_body(draw, fig, identity)
    _draw_head(draw, fig, identity)
    _draw_bag(draw, fig, identity, behind=False)
    if occlude if occlude is not None else rng.random() < camera.occlusion:
        _draw_occluder(draw, fig, size, rng)
    return camera.develop(image, rng)


@dataclass(frozen=True)
class _Shot:
    """One image to write: subset, file-name fields, and whom it shows (an index into the identities)."""

    subset: str
    pid: int
    cam: int
    frame: int
    identity_index: int
    junk: bool = False


def _check_arguments(num_ids: int, num_cams: int, per_cam: tuple[int, int], height: int, width: int,
                     train_fraction: float) -> None:
    problems = []
    if not 2 <= num_ids <= 9999:
        problems.append(f"num_ids={num_ids} (expected 2..9999: file names hold 4 digits)")
    if not 2 <= num_cams <= 9:
        problems.append(f"num_cams={num_cams} (expected 2..9: file names hold 1 digit)")
    if not 1 <= per_cam[0] <= per_cam[1]:
        problems.append(f"images_per_id_per_cam={per_cam} (expected 1 <= low <= high)")
    if min(height, width) < 16:
        problems.append(f"height x width = {height} x {width} (expected at least 16 x 16)")
    if not 0 < train_fraction < 1:
        problems.append(f"train_fraction={train_fraction} (expected between 0 and 1)")
    if problems:
        raise ConfigError("generate_market_dataset: bad " + "; ".join(problems))


def _plan(num_ids: int, num_cams: int, per_cam: tuple[int, int], train_fraction: float, num_distractors: int,
          num_junk: int, rng: np.random.Generator) -> list[_Shot]:
    """Every image: training ids in bounding_box_train; test ids give one query per (id, camera) with at least
    two shots, the rest to the gallery; distractors (pid 0) and junk (pid -1) go to the gallery."""
    num_train = min(num_ids - 1, max(1, round(num_ids * train_fraction)))
    is_train = np.zeros(num_ids, bool)
    is_train[rng.permutation(num_ids)[:num_train]] = True
    frames = [0] * num_cams
    shots = []

    def next_frame(cam: int) -> int:
        frames[cam] += int(rng.integers(1, 60))
        return frames[cam]

    for index in range(num_ids):
        cams = rng.permutation(num_cams)[: int(rng.integers(2, num_cams + 1))]
        for cam in sorted(cams):
            count = int(rng.integers(per_cam[0], per_cam[1] + 1))
            for shot in range(count):
                subset = "train" if is_train[index] else ("query" if shot == 0 and count >= 2 else "gallery")
                shots.append(_Shot(subset, index + 1, int(cam), next_frame(int(cam)), index))
    for extra in range(num_distractors + num_junk):
        cam, junk = int(rng.integers(num_cams)), extra >= num_distractors
        shots.append(_Shot("gallery", -1 if junk else 0, cam, next_frame(cam), num_ids + extra, junk))
    return shots


SUBSET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def _render(shot: _Shot, identities: list[Identity], cameras: list[Camera], size: tuple[int, int],
            seed: int) -> Image.Image:
    rng = np.random.default_rng([seed, shot.identity_index, shot.cam, shot.frame])
    camera = cameras[shot.cam]
    if shot.junk:  # a detector's miss: mostly background with a sliver of somebody at the edge
        return draw_person(identities[shot.identity_index], camera, rng, shift=(size[1] * 0.7, 0), size=size)
    return draw_person(identities[shot.identity_index], camera, rng, size=size, pose_phase=rng.random())


def _file_name(shot: _Shot) -> str:
    sequence = 1 + shot.frame // 10000 % 6
    person = "-1" if shot.junk else f"{shot.pid:04d}"  # Market writes junk as -1, not -001
    return f"{person}_c{shot.cam + 1}s{sequence}_{shot.frame:06d}_01.jpg"


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _other_options(target: Path, theirs: object, ours: dict) -> DatasetError:
    """The refusal to replace a generated dataset of other options: another run may be reading its images."""
    theirs = theirs if isinstance(theirs, dict) else {}
    diff = ", ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in sorted(set(theirs) | set(ours))
                     if theirs.get(k) != ours.get(k))
    return DatasetError(f"{target} holds a synthetic dataset generated with other options ({diff}); it is not "
                        "replaced, since another run may be using its images: give these options their own "
                        f"data.root (reidkit demo: --cache), or delete {target} to regenerate it")


def _reuse_generated(target: Path, params: dict, generator: str) -> bool:
    """True when `target` holds the dataset of `params` already, False when there is no `target`; any other
    folder there (hand-made, or generated with other options) is refused, never replaced."""
    if not target.exists():
        return False
    old = _read_manifest(target)
    if old is None:
        raise DatasetError(f"{target} exists and was not written by {generator} (no {MANIFEST}); refusing to "
                           "overwrite it: choose another root")
    if old.get("params") != params:
        raise _other_options(target, old.get("params"), params)
    return True


def _move_into_place(tmp: Path, target: Path, params: dict) -> None:
    """Rename the finished folder to `target`; when a concurrent call got there first, keep its folder if it
    holds the same dataset, and refuse otherwise (its images may be in use)."""
    try:
        os.rename(tmp, target)
    except OSError:
        old = _read_manifest(target)
        if old is None or not target.exists():
            raise
        if old.get("params") != params:
            raise _other_options(target, old.get("params"), params) from None


def materialize_once(target: Path, params: dict, write: Callable[[Path], dict], generator: str) -> Path:
    """The one way every synthetic generator writes its dataset: `write(folder)` fills a temporary folder beside
    `target` and returns its counts, the manifest records `params` (with the generator's version) and the
    folder is renamed into place, so an interrupted run leaves nothing behind. A second call with the same
    params returns `target` untouched; a folder there of other params, or not generated, is refused."""
    if _reuse_generated(target, params, generator):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    honour_umask(tmp, directory=True)  # it becomes the dataset folder
    try:
        counts = write(tmp)
        atomic_write_json(tmp / MANIFEST, {"params": params, "counts": counts})
        _move_into_place(tmp, target, params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def generate_market_dataset(root: str | os.PathLike, *, num_ids: int = 100, num_cams: int = 6,
                            images_per_id_per_cam: int | tuple[int, int] = (2, 4), height: int = 128,
                            width: int = 64, train_fraction: float = 0.5, num_distractors: int = 0,
                            num_junk: int = 0, seed: int = 0, jpeg_quality: int = 92) -> Path:
    """Write `<root>/Market-1501-v15.09.15/` and return it; a second call with the same parameters does nothing.

    Each identity appears in 2..num_cams cameras with `images_per_id_per_cam` (int or (low, high)) images each.
    A folder there holding other parameters (or not generated) is refused, never replaced: another run may be
    reading its images.
    """
    if isinstance(images_per_id_per_cam, int):
        images_per_id_per_cam = (images_per_id_per_cam, images_per_id_per_cam)
    per_cam = (int(images_per_id_per_cam[0]), int(images_per_id_per_cam[1]))
    _check_arguments(num_ids, num_cams, per_cam, height, width, train_fraction)
    params = {"version": GENERATOR_VERSION, "num_ids": num_ids, "num_cams": num_cams, "per_cam": list(per_cam),
              "height": height, "width": width, "train_fraction": train_fraction,
              "num_distractors": num_distractors, "num_junk": num_junk, "seed": seed, "jpeg_quality": jpeg_quality}
    return materialize_once(Path(root).expanduser() / MARKET_FOLDER, params,
                            lambda folder: _write_images(folder, params), "reidkit.data.synthetic")


def _write_images(folder: Path, params: dict) -> dict[str, int]:
    rng = np.random.default_rng(params["seed"])
    cameras = [Camera.sample(i, rng) for i in range(params["num_cams"])]
    extra = params["num_distractors"] + params["num_junk"]
    identities = [Identity.sample(rng) for _ in range(params["num_ids"] + extra)]
    shots = _plan(params["num_ids"], params["num_cams"], tuple(params["per_cam"]), params["train_fraction"],
                  params["num_distractors"], params["num_junk"], rng)
    counts = dict.fromkeys(SUBSET_FOLDERS, 0)
    for sub in SUBSET_FOLDERS.values():
        (folder / sub).mkdir()
    size = (params["height"], params["width"])
    for shot in shots:
        image = _render(shot, identities, cameras, size, params["seed"])
        image.save(folder / SUBSET_FOLDERS[shot.subset] / _file_name(shot), quality=params["jpeg_quality"])
        counts[shot.subset] += 1
    return counts


def describe(root: str | os.PathLike) -> dict:
    """The manifest of a generated dataset: its parameters and image counts per subset."""
    folder = Path(root).expanduser() / MARKET_FOLDER
    manifest = _read_manifest(folder)
    if manifest is None:
        raise DatasetError(f"{folder / MANIFEST} is missing or unreadable: {root} holds no generated dataset")
    return manifest


__all__ = ["Identity", "Camera", "draw_person", "generate_market_dataset", "describe", "materialize_once", "PALETTE",
           "VIEWS", "MARKET_FOLDER"]
