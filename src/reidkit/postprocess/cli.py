"""`reidkit postprocess`: run the AICity chain on feature files and write the submission file.

    reidkit postprocess features.mat --tracks test_track.txt --gallery-names name_test.txt -o track2.txt

Every input beyond the feature file is optional and switches its step on. With --evaluate (labelled
features, e.g. VeRi or the AICity validation split) the mAP / R1 of every stage is printed as a table.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from reidkit.config import FRACTION, NON_NEGATIVE, POSITIVE, Check, in_range
from reidkit.data.vehicle.common import read_name_list, read_track_file
from reidkit.errors import ReidkitError
from reidkit.postprocess.cameras import PenaltyWeights
from reidkit.postprocess.chain import ChainInputs, ChainParams, iter_chain
from reidkit.postprocess.crops import add_crop_features
from reidkit.postprocess.evaluation import StageScore, format_stage_table, score_distances
from reidkit.features.files import load_arrays, load_features
from reidkit.postprocess.rerank import RerankParams
from reidkit.postprocess.submission import SUBMISSION_TOPK, write_submission
from reidkit.utils.paths import refuse_overlap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, r, w = ChainParams(), RerankParams(), PenaltyWeights()
    parser.add_argument("features", type=Path, help="feature file (.mat/.npz: query_f, gallery_f, ...)")
    parser.add_argument("-o", "--output", type=Path, default=Path("track2.txt"),
                        help="submission file to write (default: %(default)s, in the working directory)")
    parser.add_argument("--tracks", type=Path, help="gallery track file (test_track.txt): enables track smoothing")
    parser.add_argument("--gallery-names", type=Path,
                        help="gallery name list (name_test.txt) when the feature file holds no gallery_name")
    parser.add_argument("--crop-features", type=Path, metavar="FILE",
                        help="feature file of the detector crops of the same query and gallery images (same "
                             "names, same order): each feature becomes normalise(f + f_crop), as the reference")
    parser.add_argument("--camera-predictions", type=Path,
                        help=".mat/.npz with query_cam, gallery_cam: predicted camera per image, -1 unknown")
    parser.add_argument("--cameras-from-features", action="store_true",
                        help="use the feature file's query_cam / gallery_cam as known cameras (VeRi-style data)")
    parser.add_argument("--camera-features", type=Path,
                        help=".mat/.npz with query_f, gallery_f of a camera model: enables cam-clusters")
    parser.add_argument("--direction-features", type=Path,
                        help=".mat/.npz with query_f, gallery_f of a direction model: enables the direction "
                             "penalties")
    parser.add_argument("--no-rerank", action="store_true", help="submit the ranking before re-ranking")
    parser.add_argument("--evaluate", action="store_true",
                        help="print mAP / R1 after every stage (needs query/gallery labels and cameras)")
    parser.add_argument("--topk", type=int, default=SUBMISSION_TOPK,
                        help="gallery indices per query line (default: %(default)s)")
    _add_chain_arguments(parser.add_argument_group(
        "chain parameters (defaults: the AICity 2020 winning entry, docs/specs/vehicle-aicity.md section 3)"), d, r, w)


def _add_chain_arguments(group: argparse._ArgumentGroup, d: ChainParams, r: RerankParams, w: PenaltyWeights) -> None:
    default = " (default: %(default)s)"
    group.add_argument("--qe-eps", type=float, default=d.qe_eps,
                       help="query expansion: DBSCAN eps on the query-query distance 2 - 2cos" + default)
    group.add_argument("--qe-min-samples", type=int, default=d.qe_min_samples,
                       help="query expansion: DBSCAN min_samples; each clustered query is replaced by the mean "
                            "of its cluster" + default)
    group.add_argument("--min-area", type=float, default=d.min_area,
                       help="image area (width x height, px) from which an image counts as high quality: only "
                            "those are averaged by query expansion and track smoothing (query_area / "
                            "gallery_area of the feature file; without them every image counts)" + default)
    group.add_argument("--track-weight", type=float, default=d.track_weight,
                       help="track smoothing: each gallery feature g becomes normalise(g + weight x the mean of "
                            "its track's high-quality members); 0 switches it off" + default)
    group.add_argument("--cam-eps", type=float, default=d.cam_eps,
                       help="cam-clusters (with --camera-features): DBSCAN eps on the camera features" + default)
    group.add_argument("--cam-min-samples", type=int, default=d.cam_min_samples,
                       help="cam-clusters: DBSCAN min_samples" + default)
    group.add_argument("--same-camera-penalty", type=float, default=w.same_camera,
                       help="subtracted from the similarity of the gallery images from the query's (predicted) "
                            "camera" + default)
    group.add_argument("--direction-penalty", type=float, default=w.direction,
                       help="query camera unknown: subtracted where the query-gallery direction similarity "
                            "reaches --direction-threshold (with --direction-features)" + default)
    group.add_argument("--direction-threshold", type=float, default=w.direction_threshold,
                       help="direction similarity from which the direction penalties apply (also in the "
                            "suppression)" + default)
    group.add_argument("--cam-cluster-penalty", type=float, default=w.same_cluster,
                       help="subtracted from the similarity of the gallery images in the query's cam-cluster" + default)
    group.add_argument("--suppression-steps", type=int, default=d.suppression_steps,
                       help="progressive same-camera suppression: for j = 0 .. N-1, the gallery images of the "
                            "camera of each query's (j+1)-th item, outside its track, lose 0.3 / (1 + j) (by direction or "
                            "cam-cluster: 0.1 / (1 + j)); 0 switches it off" + default)
    group.add_argument("--k1", type=int, default=r.k1, help="re-ranking: k-reciprocal neighbours k1" + default)
    group.add_argument("--k2", type=int, default=r.k2,
                       help="re-ranking: neighbours averaged in the local query expansion k2" + default)
    group.add_argument("--lambda-value", type=float, default=r.lambda_value,
                       help="re-ranking: weight of the original distance against the Jaccard distance" + default)


# The bounds of every number the command takes (argparse checks only the type), checked before any file is read.
NUMBER_BOUNDS: dict[str, Check] = {
    "topk": in_range(1), "qe_eps": POSITIVE, "qe_min_samples": in_range(1), "min_area": NON_NEGATIVE,
    "track_weight": NON_NEGATIVE, "cam_eps": POSITIVE, "cam_min_samples": in_range(1),
    "same_camera_penalty": NON_NEGATIVE, "direction_penalty": NON_NEGATIVE, "direction_threshold": in_range(-1, 1),
    "cam_cluster_penalty": NON_NEGATIVE, "suppression_steps": NON_NEGATIVE, "k1": in_range(1), "k2": in_range(1),
    "lambda_value": FRACTION,
}


def check_numbers(args: argparse.Namespace) -> None:
    """Each number within its bounds (NUMBER_BOUNDS), else a ReidkitError naming the option."""
    for name, check in NUMBER_BOUNDS.items():
        value = getattr(args, name)
        problem = "a finite number" if not math.isfinite(value) else check(value)
        if problem:
            raise ReidkitError(f"--{name.replace('_', '-')} {value}: expected {problem}")


def params_from_args(args: argparse.Namespace) -> ChainParams:
    penalties = PenaltyWeights(same_camera=args.same_camera_penalty, direction=args.direction_penalty,
                               direction_threshold=args.direction_threshold, same_cluster=args.cam_cluster_penalty)
    suppression = replace(ChainParams().suppression, direction_threshold=args.direction_threshold)
    return ChainParams(qe_eps=args.qe_eps, qe_min_samples=args.qe_min_samples, min_area=args.min_area,
                       track_weight=args.track_weight, cam_eps=args.cam_eps, cam_min_samples=args.cam_min_samples,
                       penalties=penalties, suppression=suppression, suppression_steps=args.suppression_steps,
                       rerank=RerankParams(k1=args.k1, k2=args.k2, lambda_value=args.lambda_value))


def _side_features(path: Path | None, feats: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """query_f / gallery_f of an auxiliary model, checked against the main feature file's sizes."""
    if path is None:
        return None, None
    aux = load_features(path)
    for side in ("query", "gallery"):
        if len(aux[f"{side}_f"]) != len(feats[f"{side}_f"]):
            raise ReidkitError(f"{path}: {len(aux[f'{side}_f'])} {side} rows, the feature file has "
                               f"{len(feats[f'{side}_f'])}")
    return aux["query_f"], aux["gallery_f"]


def inputs_from_args(args: argparse.Namespace, feats: dict[str, np.ndarray]) -> ChainInputs:
    tracks = None
    if args.tracks is not None:
        if "gallery_name" in feats:
            names = list(feats["gallery_name"])
        elif args.gallery_names is not None:
            names = read_name_list(args.gallery_names)
        else:
            raise ReidkitError("--tracks needs the gallery image names: the feature file has no gallery_name, "
                               "so pass --gallery-names name_test.txt")
        if len(names) != len(feats["gallery_f"]):
            raise ReidkitError(f"{len(names)} gallery names for {len(feats['gallery_f'])} gallery features")
        tracks = read_track_file(args.tracks, names)
    if args.crop_features is not None:
        feats = add_crop_features(feats, load_features(args.crop_features), args.features, args.crop_features)
    query_cam = gallery_cam = None
    if args.camera_predictions is not None and args.cameras_from_features:
        raise ReidkitError("give --camera-predictions or --cameras-from-features, not both")
    if args.camera_predictions is not None:
        preds = load_arrays(args.camera_predictions, ("query_cam", "gallery_cam"))
        for side in ("query", "gallery"):
            if len(preds[f"{side}_cam"]) != len(feats[f"{side}_f"]):
                raise ReidkitError(f"{args.camera_predictions}: {len(preds[f'{side}_cam'])} {side}_cam entries, "
                                   f"{args.features} has {len(feats[f'{side}_f'])} {side} rows")
        query_cam, gallery_cam = preds["query_cam"], preds["gallery_cam"]
    elif args.cameras_from_features:
        if "query_cam" not in feats or "gallery_cam" not in feats:
            raise ReidkitError(f"--cameras-from-features: {args.features} has no query_cam / gallery_cam")
        query_cam, gallery_cam = feats["query_cam"], feats["gallery_cam"]
    query_cam_f, gallery_cam_f = _side_features(args.camera_features, feats)
    query_dir_f, gallery_dir_f = _side_features(args.direction_features, feats)
    return ChainInputs(feats["query_f"], feats["gallery_f"], tracks, feats.get("query_area"),
                       feats.get("gallery_area"), query_cam, gallery_cam, query_cam_f, gallery_cam_f,
                       query_dir_f, gallery_dir_f)  # a mismatch is a PostprocessInputError naming it


def refuse_output_onto_inputs(args: argparse.Namespace) -> None:
    """-o naming one of the input files would destroy it: refused before any work."""
    inputs = {"feature file": args.features, "--tracks file": args.tracks, "--gallery-names file": args.gallery_names,
              "--crop-features file": args.crop_features,
              "--camera-predictions file": args.camera_predictions, "--camera-features file": args.camera_features,
              "--direction-features file": args.direction_features}
    refuse_overlap(args.output, inputs, flag="-o")


def run_aicity_postprocess(args: argparse.Namespace) -> int:
    check_numbers(args)
    refuse_output_onto_inputs(args)
    feats = load_features(args.features)
    inputs = inputs_from_args(args, feats)
    labels = ("query_label", "gallery_label", "query_cam", "gallery_cam")
    if args.evaluate and any(k not in feats for k in labels):
        missing = [k for k in labels if k not in feats]
        raise ReidkitError(f"--evaluate: {args.features} lacks {', '.join(missing)}")
    last = "suppression" if args.no_rerank else "re_ranking"
    scores = []
    for stage, distances in iter_chain(inputs, params_from_args(args)):
        if args.evaluate:
            scores.append(StageScore(stage, *score_distances(distances, *(feats[k] for k in labels))))
        if stage == last:
            break
    if scores:
        print(format_stage_table(scores))
    path = write_submission(args.output, distances, args.topk)
    print(f"wrote {path}: {len(distances)} queries x top-{min(args.topk, distances.shape[1])} gallery indices "
          "(1-based)")
    return 0


EPILOG = """example:
  reidkit postprocess features.mat --tracks test_track.txt --gallery-names name_test.txt -o track2.txt

It writes one file, the submission (-o, default track2.txt in the working directory): one line per query in
query order, the --topk best gallery indices, 1-based, space separated. Every input beyond the feature file is
optional and switches its step on; with --evaluate (labelled features) the mAP / R1 / R5 after every stage are
printed as a table."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reidkit postprocess", description=__doc__.split("\n\n")[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_aicity_postprocess(parser.parse_args(argv))
