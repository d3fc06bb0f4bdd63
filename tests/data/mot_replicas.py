"""Tiny MOTChallenge sequences written by the tests: coloured people on a grey floor, and their gt.txt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

FRAME_SIZE = (128, 96)  # width, height
BACKGROUND = (120, 120, 120)


@dataclass(frozen=True)
class Track:
    track: int
    color: tuple[int, int, int]
    frames: tuple[int, ...] = tuple(range(1, 11))
    height: int = 40
    width: int = 16
    conf: int = 1
    label: int = 1
    visibility: float = 1.0
    x0: int = 0  # left edge on frame 1; moves 2 px per frame

    def box(self, frame: int) -> tuple[int, int, int, int]:
        """left, top, width, height on `frame`."""
        return self.x0 + 2 * frame, 20 + (self.track % 3) * 10, self.width, self.height


def write_sequence(folder: Path, tracks: list[Track], *, num_frames: int = 10, columns: int = 9,
                   seqinfo: bool = True) -> Path:
    """folder/img1/000001.jpg ... and folder/gt/gt.txt (9 columns as MOT16/17/20, or 10 as MOT15)."""
    (folder / "img1").mkdir(parents=True)
    (folder / "gt").mkdir()
    lines = []
    for frame in range(1, num_frames + 1):
        image = Image.new("RGB", FRAME_SIZE, BACKGROUND)
        draw = ImageDraw.Draw(image)
        for t in tracks:
            if frame not in t.frames:
                continue
            left, top, width, height = t.box(frame)
            draw.rectangle([left, top, left + width - 1, top + height - 1], fill=t.color)
            tail = [t.conf, t.label, t.visibility] if columns == 9 else [t.conf, -1, -1, -1]
            lines.append(",".join(str(v) for v in [frame, t.track, left, top, width, height, *tail]))
        image.save(folder / "img1" / f"{frame:06d}.jpg", quality=95)
    (folder / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    if seqinfo:
        (folder / "seqinfo.ini").write_text(
            f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate=30\nseqLength={num_frames}\n"
            f"imWidth={FRAME_SIZE[0]}\nimHeight={FRAME_SIZE[1]}\nimExt=.jpg\n")
    return folder


def people(count: int, *, first_color: int = 0) -> list[Track]:
    """`count` well separated pedestrians on every frame, each its own colour."""
    colors = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40), (220, 40, 220), (40, 220, 220),
              (250, 150, 40), (150, 40, 250), (40, 120, 60), (250, 250, 250)]
    return [Track(i + 1, colors[(first_color + i) % len(colors)], x0=22 * i) for i in range(count)]


def write_tiny_run_config(folder: Path, data: dict, **sections: dict) -> Path:
    """A one-epoch Top-DB-Net (ResNet-18, 64x32, no pretrained weights) run on `data` (the data section)."""
    cfg = {
        "data": {"height": 64, "width": 32, "num_instances": 4, "workers": 0, **data},
        "model": {"name": "top_db_net", "backbone": "resnet18", "pretrained": None},
        "optim": {"lr": 1e-3},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1, "seed": 0},
        "test": {"batch_size": 32, "eval_period": 0, "rerank": False, "max_rank": 5},
        "checkpoint": {"period": 1},
        "output": {"dir": str(folder / "run"), "progress": False, "tensorboard": False},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
