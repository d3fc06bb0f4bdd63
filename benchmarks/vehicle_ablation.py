"""Ablation of the AICity 2020 vehicle pipeline (docs/specs/vehicle-aicity.md, issue 8) on synthetic vehicles.

Run by hand (about 10 CPU minutes on one thread with the defaults):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vehicle_ablation.py --root /tmp/reidkit-vehicles --threads 1

Every step goes through the command a user runs, so the benchmark also checks the CLI path end to end:

1. `reidkit train --config configs/vehicle/synthetic_ft_net.yaml` for model A (ft_net, MobileNetV2, avg pooling)
   and, unless --no-fusion, model B (the same with avg+max pooling and another seed);
2. `reidkit extract` of the query and gallery: model A plain, model A with flip + multi-scale TTA, and A + B
   fused with TTA (the chain's input);
3. the post-processing chain on the fused features, stage by stage (cumulative, as the reference's ablation),
   and the full chain without each step (leave-one-out), scored with the Market-style protocol
   (docs/specs/vehicle-aicity.md section 5);
4. `reidkit postprocess ... --evaluate -o submission.txt`: the submission file, read back and checked.

The synthetic gallery has known cameras (VeRi layout), used as the "predicted" cameras
(--cameras-from-features); there is no camera or direction model, so cam-clusters and direction penalties are
off. The table is printed and, with --markdown, written as a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/vehicle/synthetic_ft_net.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="dataset root (synthetic vehicles generated here)")
    parser.add_argument("--output", type=Path, help="run folder (default: <root>/ablation)")
    parser.add_argument("--epochs", type=int, default=16, help="training epochs of each model (recipe: 16)")
    parser.add_argument("--epochs-b", type=int, help="epochs of model B (default: --epochs)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.1], help="test-time scales")
    parser.add_argument("--no-fusion", action="store_true", help="train model A only (no fusion row)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override of both trainings, e.g. the recipe before issue 18: data.sampler="
                             "identity train.batch_size=32 model.options.droprate=0.5 data.autoaugment_epochs=0")
    return parser.parse_args(argv)


def reidkit(*args: str, threads: int) -> str:
    """Run `python -m reidkit ARGS` (the user's command) and return its stdout; stop on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "reidkit", *args]
    print("$ reidkit " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def anneal_over(epochs: int) -> list[str]:
    """The recipe's AutoAugment view anneals over all of training: over --epochs when the recipe has it on."""
    from reidkit.config import load_config

    return [f"data.autoaugment_epochs={epochs}"] if load_config(CONFIG).data.autoaugment_epochs else []


def train(run: Path, root: Path, epochs: int, threads: int, *extra: str) -> Path:
    checkpoint = run / "checkpoints" / "last.pth"
    if (run / "results.json").is_file():  # written once training has finished
        print(f"reusing {checkpoint}")
        return checkpoint
    resume = ["--resume", str(run)] if checkpoint.is_file() else []  # an interrupted run continues
    reidkit("train", "--config", CONFIG, "--root", str(root), "--output", str(run), *resume, f"train.epochs={epochs}",
            f"train.threads={threads}", "output.progress=false", *anneal_over(epochs), *extra, threads=threads)
    return checkpoint


def extract(weights: list[Path], root: Path, output: Path, scales: list[float], flip: bool, threads: int) -> Path:
    args = [a for w in weights for a in ("--weights", str(w))]
    reidkit("extract", *args, "--root", str(root), "--output", str(output), "--scales", *map(str, scales),
            "--flip" if flip else "--no-flip", "output.progress=false", threads=threads)
    return output


def chain_inputs(features: Path, tracks: Path):
    """Feature file -> (ChainInputs, ChainParams, labels), through the parser of `reidkit postprocess`."""
    from reidkit.postprocess.cli import add_arguments, inputs_from_args, params_from_args
    from reidkit.features.files import load_features

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(features), "--tracks", str(tracks), "--cameras-from-features"])
    feats = load_features(features)
    labels = [feats[k] for k in ("query_label", "gallery_label", "query_cam", "gallery_cam")]
    return inputs_from_args(args, feats), params_from_args(args), labels


def score(distances: np.ndarray, labels: list[np.ndarray]) -> tuple[float, float, float]:
    from reidkit.postprocess.evaluation import score_distances

    return score_distances(distances, *labels)


def leave_one_out(params) -> dict[str, object]:
    """ChainParams of the full chain without one step (each switched off through its own parameters)."""
    from reidkit.postprocess.cameras import PenaltyWeights

    off = PenaltyWeights(same_camera=0.0, direction=0.0, same_cluster=0.0)
    return {
        "query_expansion": replace(params, qe_min_samples=10 ** 9),  # DBSCAN: no cluster, no expansion
        "track_smoothing": replace(params, track_weight=0.0),
        "camera_penalties": replace(params, penalties=off),
        "suppression": replace(params, suppression_steps=0),
    }


def ablation_rows(features: Path, tracks: Path) -> tuple[list[tuple[str, float, float, float]], np.ndarray]:
    from reidkit.postprocess.chain import iter_chain, run_chain
    from reidkit.postprocess.evaluation import STAGE_LABELS

    inputs, params, labels = chain_inputs(features, tracks)
    rows, last = [], None
    for stage, distances in iter_chain(inputs, params):
        rows.append((STAGE_LABELS[stage], *score(distances, labels)))
        last = distances
    names = {"query_expansion": "DBSCAN query expansion", "track_smoothing": "track smoothing",
             "camera_penalties": "camera / direction penalties", "suppression": "progressive suppression"}
    for step, variant in leave_one_out(params).items():
        rows.append((f"full chain without {names[step]}", *score(run_chain(inputs, variant), labels)))
    rows.append(("full chain without re-ranking", *score(run_chain(inputs, params, until="suppression"), labels)))
    return rows, last


def diagnostics(features: Path, tracks: Path) -> str:
    """What explains the steps' effects: how DBSCAN groups the queries, and how often the raw top-1 (junk =
    same vehicle and camera removed) comes from the query's own camera, i.e. is a wrong vehicle by design."""
    from reidkit.postprocess.chain import query_clusters_and_expansion, run_chain
    from reidkit.postprocess.tracks import high_quality_mask

    inputs, params, (q_pids, g_pids, q_cams, g_cams) = chain_inputs(features, tracks)
    labels, _ = query_clusters_and_expansion(inputs.query_f, high_quality_mask(None, len(q_pids)), params)
    pairs = [(i, j) for i in range(len(labels)) for j in range(i) if labels[i] != -1 and labels[i] == labels[j]]
    pure = sum(q_pids[i] == q_pids[j] for i, j in pairs)
    same_cam = sum(q_cams[i] == q_cams[j] for i, j in pairs)
    dist = run_chain(inputs, params, until="raw")
    junk = (q_pids[:, None] == g_pids[None, :]) & (q_cams[:, None] == g_cams[None, :])
    top1 = np.where(junk, np.inf, dist).argmin(axis=1)
    own_cam = float(np.mean(g_cams[top1] == q_cams))
    wrong = float(np.mean(g_pids[top1] != q_pids))
    return (f"DBSCAN(eps={params.qe_eps}, min_samples={params.qe_min_samples}): {int(np.sum(labels != -1))} of "
            f"{len(labels)} queries in {len(set(labels.tolist()) - {-1})} clusters; {pure} of {len(pairs)} "
            f"same-cluster query pairs share a vehicle, {same_cam} a camera\n"
            f"raw top-1 (junk removed): wrong vehicle for {wrong:.0%} of the queries, from the query's own camera "
            f"for {own_cam:.0%}")


def format_rows(rows: list[tuple[str, float, float, float]], base: float, markdown: bool) -> str:
    width = max(len(r[0]) for r in rows)
    if markdown:
        lines = ["| features / step | mAP (%) | R1 (%) | R5 (%) | mAP vs fused raw |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {100 * m:.2f} | {100 * r1:.2f} | {100 * r5:.2f} | {100 * (m - base):+.2f} |"
                  for n, m, r1, r5 in rows]
    else:
        lines = [f"{'features / step':<{width}}   mAP(%)   R1(%)   R5(%)   dmAP", "-" * (width + 38)]
        lines += [f"{n:<{width}}   {100 * m:6.2f}  {100 * r1:6.2f}  {100 * r5:6.2f}  {100 * (m - base):+6.2f}"
                  for n, m, r1, r5 in rows]
    return "\n".join(lines)


def check_submission(path: Path, num_query: int, num_gallery: int) -> None:
    from reidkit.postprocess.submission import read_submission

    rows = read_submission(path, num_gallery)
    expected = min(100, num_gallery)
    if len(rows) != num_query or any(len(r) != expected for r in rows):
        sys.exit(f"{path}: expected {num_query} lines of {expected} indices, got {len(rows)} lines")
    print(f"{path}: {len(rows)} lines of {expected} 1-based gallery indices (checked)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    out = (args.output or root / "ablation").resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    t = args.threads
    model_a = train(out / "model_a", root, args.epochs, t, *args.train_override)
    weights = [model_a]
    if not args.no_fusion:
        weights.append(train(out / "model_b", root, args.epochs_b or args.epochs, t,
                             "model.options.pool=avg+max", "train.seed=2", *args.train_override))
    tracks = root / "synthetic_vehicles" / "test_track.txt"
    plain = extract([model_a], root, out / "a_plain.mat", [1.0], False, t)
    tta = extract([model_a], root, out / "a_tta.mat", args.scales, True, t)
    fused = extract(weights, root, out / "fused_tta.mat", args.scales, True, t) if len(weights) > 1 else tta
    b_tta = extract(weights[1:], root, out / "b_tta.mat", args.scales, True, t) if len(weights) > 1 else None

    _, _, labels = chain_inputs(plain, tracks)
    scales = ", ".join(f"{s:g}" for s in args.scales)
    head = [("model A, no TTA", *score(_raw(plain, tracks), labels)),
            (f"model A, flip + scales {scales}", *score(_raw(tta, tracks), labels))]
    if b_tta is not None:
        head.append((f"model B, flip + scales {scales}", *score(_raw(b_tta, tracks), labels)))
    if fused is not tta:
        head.append((f"models A + B fused (flip + scales {scales})", *score(_raw(fused, tracks), labels)))
    rows, full = ablation_rows(fused, tracks)
    base = rows[0][1]

    submission = out / "submission.txt"
    printed = reidkit("postprocess", str(fused), "--tracks", str(tracks), "--cameras-from-features", "--evaluate",
                      "-o", str(submission), threads=t)
    print(printed)
    check_submission(submission, *full.shape)
    from reidkit.postprocess.submission import rank_gallery, read_submission

    same = np.array_equal(np.asarray(read_submission(submission)) - 1, rank_gallery(full))
    print(f"submission == in-process full-chain ranking: {same}")

    table = format_rows(head + rows[1:], base, markdown=False)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu.ru_utime + cpu.ru_stime + sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    print("\n" + diagnostics(fused, tracks))
    print(f"\nAICity pipeline ablation on synthetic vehicles ({len(full)} queries, {full.shape[1]} gallery images; "
          f"{args.epochs} epochs; threads {t})\n{table}")
    print(f"\n(rows after the fused line: the chain on the fused features, cumulative; then leave-one-out)\n"
          f"wall time {time.perf_counter() - start:.0f} s, CPU time {cpu:.0f} s")
    if args.markdown:
        from reidkit.utils.io import atomic_write_text

        atomic_write_text(args.markdown, format_rows(head + rows[1:], base, markdown=True) + "\n")
        print(f"wrote {args.markdown}")
    return 0 if same else 1


def _raw(features: Path, tracks: Path) -> np.ndarray:
    from reidkit.postprocess.chain import run_chain

    inputs, params, _ = chain_inputs(features, tracks)
    return run_chain(inputs, params, until="raw")


if __name__ == "__main__":
    sys.exit(main())
