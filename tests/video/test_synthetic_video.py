"""Synthetic video in the MARS layout: identities consistent across tracklets, motion within a tracklet, and
attribute labels that follow what is drawn."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from reidkit.data.base import build_dataset
from reidkit.data.synthetic import PALETTE, Camera, Identity, draw_person
from reidkit.data.video import MARS_ATTRIBUTES, generate_video_dataset
from reidkit.data.video.synthetic import (COLOUR_FAMILIES, TrackletPlan, identity_labels, render_tracklet,
                                          tracklet_labels)
from reidkit.errors import ConfigError

NAMES = [name for _, name, _ in MARS_ATTRIBUTES.attributes]
RELEVANT = [name for group, name, _ in MARS_ATTRIBUTES.attributes if group == "relevant"]
SMALL = {"num_ids": 6, "num_cams": 3, "frames": (4, 6), "seed": 3}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build_dataset("synthetic_video", root=tmp_path_factory.mktemp("synthetic_video"), **SMALL)


def neutral_camera() -> Camera:
    return Camera(index=0, gain=(1.0, 1.0, 1.0), contrast=1.0, gamma=1.0, wall_rgb=(128, 128, 128),
                  floor_rgb=(100, 100, 100), horizon=0.85, clutter=0, scale=0.9, view_weights=(1, 0, 0, 0),
                  blur=1.0, noise=0.0, occlusion=0.0)


def test_layout_is_read_as_mars_with_attributes(small):
    assert small.num_train_pids == 3 and len(small.query) == 3  # one query per test identity
    assert small.attribute_schema is MARS_ATTRIBUTES
    assert all(a is not None for subset in ("train", "query", "gallery") for a in small.attributes[subset])
    frames, _, _ = small.train[0]
    assert 4 <= len(frames) <= 6 and Image.open(frames[0]).size == (32, 64)
    # every query identity has gallery tracklets under another camera
    for _, pid, camid in small.query:
        assert any(p == pid and c != camid for _, p, c in small.gallery)


def test_identity_attributes_are_consistent_and_tracklet_ones_vary(small):
    by_pid: dict[int, set] = {}
    for (_, pid, _), labels in zip(small.train, small.attributes["train"]):
        by_pid.setdefault(pid, set()).add(tuple(labels[NAMES.index(n)] for n in RELEVANT))
    assert all(len(v) == 1 for v in by_pid.values())
    assert len({v.pop() for v in by_pid.values()}) > 1  # identities differ
    views = {labels[NAMES.index("angle")] for labels in small.attributes["train"] + small.attributes["gallery"]}
    assert len(views) > 1


def test_frames_move_within_a_tracklet_and_identities_differ(small):
    def pixels(path):
        return np.asarray(Image.open(path), dtype=np.float32)

    within, across = [], []
    for frames, pid, camid in small.train:
        within.append(np.abs(pixels(frames[0]) - pixels(frames[1])).mean())
        other = next(f for f, p, c in small.train if p != pid and c != camid)
        across.append(np.abs(pixels(frames[0]) - pixels(other[0])).mean())
    assert min(within) > 0  # frames change: pose, motion, sensor noise
    assert np.mean(within) < 0.5 * np.mean(across)


def test_second_call_reuses_the_data_and_bad_options_are_reported(tmp_path):
    first = generate_video_dataset(tmp_path, **SMALL)
    stamp = (first / "info" / "train_name.txt").stat().st_mtime_ns
    assert generate_video_dataset(tmp_path, **SMALL) == first
    assert (first / "info" / "train_name.txt").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"num_cams=1"):
        generate_video_dataset(tmp_path, num_cams=1)


def test_labels_follow_the_identity():
    base = Identity.sample(np.random.default_rng(0))
    who = dataclasses.replace(base, upper="navy", lower="beige", sleeves="short", lower_style="skirt",
                              bag="backpack", hat="cap", hair="long")
    labels = identity_labels(who)
    assert labels["upcolor"] == COLOUR_FAMILIES.index("blue") and labels["downcolor"] == COLOUR_FAMILIES.index("brown")
    assert (labels["up"], labels["down"], labels["btype"]) == (1, 1, 1)
    assert (labels["backpack"], labels["bag"], labels["handbag"], labels["hat"], labels["hair"]) == (1, 0, 0, 1, 1)
    plan = TrackletPlan("train", 1, 0, 0, 1, 5, view="left", action="running", occluded=True, cut=False)
    full = dict(zip(NAMES, tracklet_labels(plan, who)))
    assert (full["action"], full["angle"], full["occlusion"], full["cut"]) == (2, 2, 1, 0)
    MARS_ATTRIBUTES.check(list(full.values()), "synthetic")


def test_drawn_top_colour_matches_its_label():
    base = Identity.sample(np.random.default_rng(1))
    who = dataclasses.replace(base, upper="green", upper_rgb=PALETTE["green"], pattern="solid", bag="none")
    image = np.asarray(draw_person(who, neutral_camera(), np.random.default_rng(0), view="front", size=(128, 64)))
    torso = image[int(128 * 0.35):int(128 * 0.45), 28:36].reshape(-1, 3).mean(0)
    assert identity_labels(who)["upcolor"] == COLOUR_FAMILIES.index("green")
    assert torso.argmax() == 1 and torso[1] > 1.5 * max(torso[0], torso[2])  # green dominates the drawn torso


def test_occluder_is_static_across_frames():
    who = Identity.sample(np.random.default_rng(2))
    plan = TrackletPlan("train", 1, 0, 0, 1, 5, view="front", action="walking", occluded=True, cut=False)
    frames = [np.asarray(f) for f in render_tracklet(plan, who, neutral_camera(), (64, 32), 0)]
    # per-frame brightness and sensor noise change every drawn pixel; the pasted occluder stays the same
    still = np.all([np.all(frames[0] == f, axis=-1) for f in frames[1:]], axis=0)
    assert still.mean() > 0.05
    clear = dataclasses.replace(plan, occluded=False)
    frames = [np.asarray(f) for f in render_tracklet(clear, who, neutral_camera(), (64, 32), 0)]
    assert np.all([np.all(frames[0] == f, axis=-1) for f in frames[1:]], axis=0).mean() < 0.01
