"""`reidkit data`: turn tracking ground truth into a re-ID dataset, and check a dataset before training on it.

    reidkit data from-mot --sequences MOT17/train --output data/mot17_reid --min-height 50 --every 5
    reidkit data check --config configs/top_db_net/market1501.yaml --root DATA
    reidkit data check --name custom --root mydata data.options.split=auto

`check` exits with 1 when a problem makes training or testing impossible (the data cannot be loaded, fewer
training identities than a batch takes, images the loaders fail on, no query with a match), 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from reidkit.errors import ConfigError, DatasetError

FROM_MOT_EPILOG = """Each sequence folder holds gt/gt.txt (frame, id, left, top, width, height, conf, class,
visibility) and its frames in img1/ (or seqinfo.ini's imDir). The output is the custom dataset's folder layout,
<output>/{train,query,gallery}/<pid>/<camid>/<sequence>_<frame>.jpg, with identities.csv and conversion.json;
train on it with `reidkit train --config ... data.name=custom --root <output>`. Each sequence is one camera and
an identity lives in one sequence, so it is evaluated with the protocol that removes only the query image itself.
Defaults of --min-visibility, --min-images, --max-images and --test-ids are those of MMDetection's mot2reid."""

CHECK_EPILOG = """Checks the training data (data.name, or every entry of data.sources) and the test targets
(test.targets): counts per split, identities, cameras, images per identity, image sizes, and the problems:
unreadable or zero-byte images, identities with a single image or a single camera, query identities missing from
the gallery, queries without a match, files found in two splits. Exit code 1: training or testing is impossible."""


def _camera(text: str) -> tuple[str, int]:
    name, sep, value = text.rpartition("=")
    if not sep or not name or not value.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SEQUENCE=CAMID, e.g. MOT17-02-FRCNN=0")
    return name, int(value)


def _add_from_mot(commands: Any) -> None:
    from_mot = commands.add_parser("from-mot", help="MOTChallenge ground truth -> re-ID crops (custom layout)",
                                   description="Crop every tracked person of MOTChallenge sequences into a re-ID "
                                   "dataset in the custom layout.", epilog=FROM_MOT_EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    from_mot.add_argument("--sequences", required=True, type=Path, metavar="DIR",
                          help="a sequence folder, a folder of them, or a MOTChallenge root holding train/")
    from_mot.add_argument("--output", required=True, type=Path, metavar="DIR", help="new dataset folder")
    from_mot.add_argument("--min-height", type=float, default=0.0, metavar="PX",
                          help="smallest box height kept, in pixels after clipping to the frame (default 0: all)")
    from_mot.add_argument("--min-visibility", type=float, default=0.3, metavar="V",
                          help="smallest visible fraction kept, 0..1 (default 0.3)")
    from_mot.add_argument("--every", type=int, default=1, metavar="N", help="keep every N-th frame (default 1)")
    from_mot.add_argument("--classes", type=int, nargs="+", default=[1], metavar="ID",
                          help="MOT classes kept (default 1: pedestrian)")
    from_mot.add_argument("--min-images", type=int, default=8, metavar="N",
                          help="drop identities with fewer crops (default 8)")
    from_mot.add_argument("--max-images", type=int, default=1000, metavar="N",
                          help="thin identities with more crops evenly to N (default 1000)")
    from_mot.add_argument("--test-ids", type=float, default=0.2, metavar="F",
                          help="test identities: a fraction below 1 or a count (default 0.2)")
    from_mot.add_argument("--query-per-id", type=int, default=1, metavar="N",
                          help="query crops per test identity; the others go to the gallery (default 1)")
    from_mot.add_argument("--seed", type=int, default=0, help="seed of the identity split and query draw (default 0)")
    from_mot.add_argument("--camera", type=_camera, action="append", default=[], metavar="SEQ=ID",
                          help="camera id of a sequence (default: its position in name order); repeatable")
    from_mot.add_argument("--jpeg-quality", type=int, default=95, metavar="Q",
                          help="JPEG quality of the crops, 1-100 (default 95)")
    from_mot.add_argument("--no-progress", action="store_true", help="no progress bar")
    from_mot.set_defaults(func=cmd_from_mot)


def _add_check(commands: Any) -> None:
    check = commands.add_parser("check", help="statistics and problems of a dataset (exit 1 if unusable)",
                                description="Counts, histograms, image sizes and the problems that would hurt "
                                "training or testing.", epilog=CHECK_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--config", metavar="YAML", help="run config whose data (and test.targets) to check")
    check.add_argument("--name", metavar="NAME", help="dataset name instead of the config's data (sets data.name)")
    check.add_argument("--root", metavar="DIR", help="dataset root folder (sets data.root)")
    check.add_argument("--split", choices=["auto"], help="custom data: split a folder of identities (sets "
                       "data.options.split; the split is written beside the data)")
    check.add_argument("--jobs", type=int, metavar="N", help="images decoded at once (default: up to 4)")
    check.add_argument("--json", type=Path, metavar="FILE", help="also write the reports as JSON")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. "
                       "data.options.split=auto")
    check.set_defaults(func=cmd_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reidkit data", description="Prepare and check re-ID datasets.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_from_mot(commands)
    _add_check(commands)
    return parser


def cmd_from_mot(args: argparse.Namespace) -> int:
    from reidkit.data.mot import MotOptions, convert_mot

    options = MotOptions(min_height=args.min_height, min_visibility=args.min_visibility, every=args.every,
                         classes=tuple(args.classes), min_images=args.min_images, max_images=args.max_images,
                         test_ids=args.test_ids, query_per_id=args.query_per_id, seed=args.seed,
                         cameras=dict(args.camera), jpeg_quality=args.jpeg_quality)
    report = convert_mot(args.sequences, args.output, options, progress=not args.no_progress)
    print(report.summary())
    print(f"train on it: reidkit train --config CONFIG data.name=custom --root {args.output}")
    return 0


def check_config_data(cfg: Any, *, jobs: int | None = None, progress: bool = True) -> list:
    """One CheckReport per dataset the config trains on (data.name or data.sources) or tests on (test.targets)."""
    from reidkit.data.check import Problem, check_dataset, unloadable
    from reidkit.data.joint import target_specs, training_specs

    training = training_specs(cfg.data)
    extra = [spec for spec in target_specs(cfg) if spec not in training]
    batch_identities = cfg.train.batch_size // cfg.data.num_instances
    reports = []
    for spec in [*training, *extra]:
        # The check sees every image: bad ones are its findings, not reasons to fail loading.
        options = {k: v for k, v in spec.options.items() if k not in ("verify_images", "skip_bad_images")}
        label = spec.label or spec.name
        try:
            dataset = replace(spec, options=options).build()
        except DatasetError as error:
            reports.append(unloadable(label, spec.root, error))
            continue
        reports.append(check_dataset(dataset, label=label, jobs=jobs, progress=progress,
                                     batch_identities=batch_identities if len(training) == 1 and spec in training
                                     else None, skip_bad_images=bool(spec.options.get("skip_bad_images"))))
    if len(training) > 1:
        total = sum(r.subsets["train"].identities for r in reports[:len(training)] if r.subsets)
        if total < batch_identities:
            reports[0].problems.append(Problem(True, "too few training identities", f"{total} over all sources, "
                                               f"but a batch takes {batch_identities}"))
    return reports


def cmd_check(args: argparse.Namespace) -> int:
    from reidkit.config import load_config
    from reidkit.utils.io import atomic_write_json

    if not args.config and not args.name:
        raise ConfigError("data check needs --config CFG or --name NAME (with --root DIR)")
    cfg = load_config(args.config, [*(["data.options.split=auto"] if args.split else []), *args.overrides])
    if args.name:
        cfg.data.name, cfg.data.sources, cfg.test.targets = args.name, [], []
    if args.root:
        cfg.data.root = args.root
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected a positive number of threads")
    reports = check_config_data(cfg, jobs=args.jobs, progress=not args.no_progress)
    print("\n\n".join(report.format() for report in reports))
    if args.json:
        atomic_write_json(args.json, [report.to_dict() for report in reports])
    return 1 if any(report.fatal for report in reports) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return args.func(args)


__all__ = ["build_parser", "check_config_data", "main"]
