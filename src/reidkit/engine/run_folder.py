"""The run folder: a fresh one (run_artefacts, fresh_run_dir, guard_run_dir), resuming into it (resolve_resume,
load_resume, resume_folder, finished_run) and the final results.json (write_results).

A training run folder (cfg.output.dir) holds config.yaml (the resolved config), checkpoints/ (last.pth,
epoch_NNN.pth), metrics.jsonl, tensorboard/, results.json and report.html (engine.run_report).
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from reidkit.config import Config, config_from_dict
from reidkit.engine.builders import Printer
from reidkit.engine.checkpoint import load_checkpoint
from reidkit.engine.evaluator import EvalResult
from reidkit.engine.run_config import data_label
from reidkit.errors import CheckpointError, ConfigError
from reidkit.utils.io import atomic_write_json


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    history: Path
    results: Path | None
    report: Path | None
    evaluation: EvalResult | None


def resolve_resume(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (-> its checkpoints/last.pth)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.pth", path / "last.pth"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"--resume {path}: no checkpoints/last.pth in this folder")
    if not path.is_file():
        raise CheckpointError(f"--resume {path}: no such checkpoint file or run folder")
    return path


# What a run folder receives (train, and `reidkit test` into <run>/test): any of them marks an earlier run.
RUN_ARTEFACTS = ("checkpoints", "config.yaml", "metrics.jsonl", "results.json", "tensorboard", "report.html",
                 "report_files", "test")


def run_artefacts(run_dir: str | os.PathLike) -> list[str]:
    """The names of RUN_ARTEFACTS present in `run_dir` (a file, a link, or a folder that is not empty)."""
    found = []
    for name in RUN_ARTEFACTS:
        path = Path(run_dir) / name
        try:
            present = path.is_symlink() or path.is_file() or (path.is_dir() and any(path.iterdir()))
        except OSError:  # unreadable: assume it holds something
            present = True
        if present:
            found.append(name)
    return found


def fresh_run_dir(base: str | os.PathLike) -> Path:
    """`base` if it holds no run artefact (run_artefacts) yet, else the first of base_2, base_3, ... that holds none."""
    base = Path(base)
    candidate, n = base, 1
    while run_artefacts(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def guard_run_dir(run_dir: Path) -> None:
    """A new run (or a resume into another folder) starts only in a folder without an earlier run's files."""
    found = run_artefacts(run_dir)
    if not found:
        return
    advice = (f"pass --resume {run_dir} to continue it, or choose another folder with --output"
              if (run_dir / "checkpoints" / "last.pth").is_file()
              else "choose another folder with --output, or move those files away")
    raise ConfigError(f"output.dir {run_dir} already holds {', '.join(found)} of an earlier run: {advice} "
                      "(nothing was overwritten)")


def run_folder_of(checkpoint: str | os.PathLike) -> Path:
    """The run folder a checkpoint belongs to: RUN for RUN/checkpoints/x.pth, else the file's folder."""
    path = Path(checkpoint).expanduser()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def load_resume(resume: str | os.PathLike, *, loaded: Any = None) -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, its validated content); `loaded`: the content already read from it."""
    path = resolve_resume(resume)
    return path, load_checkpoint(path, for_resume=True, loaded=loaded)


def config_for_resume(ckpt: Mapping[str, Any], source: Path) -> Config:
    if not ckpt.get("config"):
        raise CheckpointError(f"{source}: holds no config; pass --config with the run's config.yaml")
    return config_from_dict(ckpt["config"], source=f"{source} (stored config)")


def with_output_dir(cfg: Config, folder: str | os.PathLike) -> Config:
    """A copy of cfg with output.dir = folder."""
    cfg = copy.deepcopy(cfg)
    cfg.output.dir = os.fspath(folder)
    return cfg


def resume_folder(cfg: Config, ckpt_path: Path, into: str | os.PathLike | None) -> tuple[Config, bool, str | None]:
    """(cfg with output.dir = the folder the run continues in, whether that is the checkpoint's own run folder,
    a note when that is not the config's output.dir)."""
    own = run_folder_of(ckpt_path) if ckpt_path.parent.name == "checkpoints" else None
    target = Path(into) if into is not None else own if own is not None else Path(cfg.output.dir)
    in_place = own is not None and os.path.realpath(target) == os.path.realpath(own)
    last = target / "checkpoints" / "last.pth"
    if in_place and last.is_file() and not os.path.samefile(last, ckpt_path):
        raise ConfigError(f"--resume {ckpt_path}: continuing it in {own} would replace {last} and the records after "
                          f"its epoch; continue it in a new folder with --output NEW (nothing was overwritten)")
    note = None
    if into is None and os.path.realpath(cfg.output.dir) != os.path.realpath(target):
        note = f"continuing in {target}, the folder of {ckpt_path.name} (not output.dir {cfg.output.dir})"
    return with_output_dir(cfg, target), in_place, note


def finished_run(cfg: Config, ckpt: Mapping[str, Any], out: Printer) -> TrainResult | None:
    """The result of a run whose checkpoint has all train.epochs done and whose results.json holds the final
    evaluation of that epoch; None when there is something left to do (train, or redo the final evaluation)."""
    run_dir, done = Path(cfg.output.dir), int(ckpt["epoch"])
    if done != cfg.train.epochs or int(ckpt.get("iteration", 0)):
        return None
    results = run_dir / "results.json"
    try:
        saved = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not saved.get("metrics") or saved.get("epoch") != done:
        return None
    report = run_dir / "report.html"
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one line, from the main process
        out(f"{run_dir}: finished: all {done} epochs trained and evaluated (results in {results}); nothing to do, "
            f"nothing was changed. To train further, resume with train.epochs=N, N > {done}")
    return TrainResult(run_dir, final_checkpoint(run_dir, done), run_dir / "metrics.jsonl", results,
                       report if report.is_file() else None, None)


def final_checkpoint(run_dir: Path, epochs: int) -> Path:
    periodic = run_dir / "checkpoints" / f"epoch_{epochs:03d}.pth"
    return periodic if periodic.is_file() else run_dir / "checkpoints" / "last.pth"


def stamp_final_metrics(run_dir: Path, epochs: int, metrics: Mapping[str, float]) -> None:
    """The final evaluation into the last epoch's checkpoints, which were written before it ran (so that a
    failing evaluation costs no training): a deployed model carries its calibrated verification threshold."""
    from reidkit.models.weights import torch_load
    from reidkit.utils.io import atomic_torch_save

    folder = run_dir / "checkpoints"
    for path in (folder / f"epoch_{epochs:03d}.pth", folder / "last.pth"):
        if path.is_file():
            state = torch_load(path)
            if state.get("epoch") == epochs:
                atomic_torch_save({**state, "metrics": {**(state.get("metrics") or {}), **metrics}}, path)


def write_results(path: Path, cfg: Config, checkpoint: Path, result: EvalResult) -> Path:
    """results.json: the final evaluation of the run's last epoch (`epoch` marks the run finished)."""
    atomic_write_json(path, {"model": cfg.model.name, "dataset": data_label(cfg), "checkpoint": str(checkpoint),
                             "epoch": cfg.train.epochs, **result.record()})
    return path
