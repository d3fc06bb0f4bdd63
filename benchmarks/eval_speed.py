"""Evaluation, re-ranking and retrieval speed of reidkit against fastreid and torchreid, in one run.

    .venv/bin/python benchmarks/eval_speed.py --peer-python PEER_VENV/bin/python            # Market scale
    .venv/bin/python benchmarks/eval_speed.py --peer-python PEER_VENV/bin/python --large    # + MSMT17, 1M IVF
    .venv/bin/python benchmarks/eval_speed.py --sections eval          # one section; see --help

What it does. It builds a synthetic Market-1501-scale problem (3,368 queries x 15,913 gallery images, 751
identities in 6 cameras plus 2,798 distractors with pid 0; features = identity centre + camera shift + noise)
and, with --large, an MSMT17-scale one (11,659 x 82,161) and a 1,000,000 x 512 retrieval gallery. Every
measurement runs in its own subprocess, so that its peak resident memory (VmHWM of that child, read by the
child itself at its end) is its own: reidkit in this interpreter, the peers in --peer-python. (Not the child's
rusage: Linux starts a child's ru_maxrss at the parent's RSS at fork/exec time, so every child would report
at least this driver's ~2 GB.) Times are wall-clock of the
call alone (inputs already loaded); peak RSS includes the interpreter, the imports and the loaded inputs,
"extra" is the peak minus the RSS just before the call. With other jobs on the machine timings are noisy:
the ratios between tools measured in the same run are what counts (eval sections take the best of
--repeat runs of each tool, alternating). Results are checked against each other and the table printed.

Sections: eval (reidkit.metrics.evaluate_rank vs fastreid's Cython `evaluate_cy`), cuhk03 (the same on a
CUHK03-scale problem, 1,400 x 5,332, with the single-gallery-shot protocol: fastreid after np.random.seed(0),
reidkit with seed=np.random.RandomState(0), which makes fastreid's draws; one run each, fastreid's
takes minutes), rerank (re_ranking and
re_ranking_from_features vs torchreid's `re_ranking`; also re_ranking with rerank.py loaded without the
reidkit.metrics package __init__, which imports torch and sklearn for other modules: for information), large-eval (evaluate_rank_from_features at MSMT17
scale), large-rerank (re_ranking_from_features at MSMT17 scale: torchreid would need several (93,820)^2
float32 matrices of 35 GB each, so it is not run), ivf (reidkit.retrieval: exact vs IVF on 1M x 512; --nlist, --nprobe,
--ivf-features reid|isotropic, see _ivf).

The peer environment (never part of the repo; peers install without dependencies):

    python3 -m venv PEER_VENV
    PEER_VENV/bin/pip install torch==2.14.1 numpy scipy cython
    PEER_VENV/bin/pip install --no-deps torchreid==0.2.5 fastreid==1.4.0
    cd PEER_VENV/lib/python3.11/site-packages/fastreid/evaluation/rank_cylib
    PEER_VENV/bin/python -c "from setuptools import setup, Extension; import numpy as np; \\
        from Cython.Build import cythonize; setup(script_args=['build_ext', '--inplace'], \\
        ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], include_dirs=[np.get_include()])]))"

The peers are loaded from their files (fastreid's compiled `rank_cy`, torchreid's `reid/utils/rerank.py`)
without importing the packages, whose __init__ pull in dependencies that were not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKET = dict(num_query=3368, num_gallery=15913, num_ids=751, num_distractors=2798, num_cams=6)
CUHK03 = dict(num_query=1400, num_gallery=5332, num_ids=700, num_distractors=0, num_cams=2)
CUHK03_SEED = 0
MSMT = dict(num_query=11659, num_gallery=82161, num_ids=3060, num_distractors=0, num_cams=15)
SECTIONS = ("eval", "cuhk03", "rerank", "large-eval", "large-rerank", "ivf")
TARGETS = {"eval": 1.5, "rerank": 10.0, "rerank_memory": 0.25, "large_eval_gb": 4.0, "large_rerank_gb": 24.0,
           "ivf_recall": 0.95}


# ---------------------------------------------------------------------------------------------------- children
def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak since exec (VmHWM), in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _load_labels(work: Path):
    import numpy as np

    with np.load(work / "labels.npz") as data:
        return data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"]


def _peer_file(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)  # locates the package without running its __init__
    if spec is None or spec.origin is None:
        raise SystemExit(f"{package} is not installed in {sys.executable}; see the docstring for the peer env")
    return Path(spec.origin).parent.joinpath(*parts)


def child(task: str, work: Path, options: dict) -> dict:
    """Run one measurement in this process; returns its figures (the parent adds the peak RSS)."""
    import numpy as np

    out: dict = {}
    if task in ("eval-reidkit", "eval-fastreid", "cuhk03-reidkit", "cuhk03-fastreid"):
        dist = np.load(work / "q_g.npy")
        labels = _load_labels(work)
        cuhk03 = task.startswith("cuhk03")
        if task.endswith("reidkit"):
            from reidkit.metrics import evaluate_rank

            # a RandomState seeded as fastreid's global one makes fastreid's single-gallery-shot draws;
            # ties="argsort" orders equal distances as fastreid does (reidkit's default ranks matches last)
            kwargs = dict(protocol="cuhk03", seed=np.random.RandomState(CUHK03_SEED)) if cuhk03 else {}
            kwargs["ties"] = "argsort"
            call = lambda: evaluate_rank(dist, *labels, max_rank=50, **kwargs)  # noqa: E731
        else:
            sys.path.insert(0, str(_peer_file("fastreid", "evaluation", "rank_cylib")))
            import rank_cy

            def call():
                if cuhk03:  # fastreid draws from numpy's global RNG; its cuhk03 evaluator returns no mINP
                    np.random.seed(CUHK03_SEED)
                    cmc, mAP = rank_cy.evaluate_cy(dist, *labels, 50, True)
                    return cmc, float(mAP), float("nan")
                cmc, all_ap, all_inp = rank_cy.evaluate_cy(dist, *labels, 50)
                return cmc, float(np.mean(all_ap)), float(np.mean(all_inp))  # as fastreid's ReidEvaluator
        out["base_mb"] = _rss_mb()
        start = time.perf_counter()
        cmc, mAP, mINP = call()
        out["seconds"] = time.perf_counter() - start
        np.savez(work / f"{task}.npz", cmc=np.asarray(cmc, np.float64), mAP=mAP, mINP=mINP)
    elif task in ("rerank-reidkit", "rerank-torchreid", "rerank-reidkit-module"):
        if task == "rerank-reidkit":
            from reidkit.metrics import re_ranking as fn
        elif task == "rerank-reidkit-module":
            # the same function without the package's other modules: `reidkit.metrics/__init__` imports
            # distance, rank and query_expansion, hence torch and sklearn (~0.65 GB), which re_ranking does not
            # use. An empty package object in their place runs rerank.py and _checks.py only: what the call
            # would cost if `reidkit.metrics` imported its submodules lazily. For information, not the target.
            import types

            import reidkit

            pkg = types.ModuleType("reidkit.metrics")
            pkg.__path__ = [str(Path(reidkit.__file__).parent / "metrics")]
            sys.modules["reidkit.metrics"] = pkg
            from reidkit.metrics.rerank import re_ranking as fn

            out["torch_imported"] = "torch" in sys.modules
        else:
            import importlib.util

            spec = importlib.util.spec_from_file_location(
                "torchreid_rerank", _peer_file("torchreid", "reid", "utils", "rerank.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            fn = module.re_ranking
        out["lib_mb"] = _rss_mb()  # the interpreter and the libraries, before any data (torch: ~0.7 GB)
        q_g, q_q, g_g = (np.load(work / f"{name}.npy") for name in ("q_g", "q_q", "g_g"))
        out["base_mb"] = _rss_mb()
        start = time.perf_counter()
        result = fn(q_g, q_q, g_g, 20, 6, 0.3)
        out["seconds"] = time.perf_counter() - start
        np.save(work / f"{task}.npy", result)
    elif task in ("rerank-reidkit-features", "large-rerank-reidkit"):
        from reidkit.metrics import re_ranking_from_features

        q_f, g_f = np.load(work / "q_f.npy"), np.load(work / "g_f.npy")
        out["base_mb"] = _rss_mb()
        start = time.perf_counter()
        result = re_ranking_from_features(q_f, g_f, 20, 6, 0.3, metric="sqeuclidean")
        out["seconds"] = time.perf_counter() - start
        if task == "rerank-reidkit-features":
            np.save(work / f"{task}.npy", result)
        else:  # the output is 3.8 GB: keep a fingerprint only
            out["rank1_gallery_of_first_queries"] = result[:5].argmin(axis=1).tolist()
    elif task == "large-eval-reidkit":
        from reidkit.metrics import evaluate_rank_from_features

        q_f, g_f = np.load(work / "q_f.npy"), np.load(work / "g_f.npy")
        labels = _load_labels(work)
        out["base_mb"] = _rss_mb()
        start = time.perf_counter()
        cmc, mAP, mINP = evaluate_rank_from_features(q_f, g_f, *labels, max_rank=50, metric="sqeuclidean")
        out["seconds"] = time.perf_counter() - start
        out.update(rank1=float(cmc[0]), mAP=mAP, mINP=mINP)
    elif task == "ivf-reidkit":
        out.update(_ivf(options))
    else:
        raise SystemExit(f"unknown child task {task!r}")
    return out


def _ivf_features(kind: str, rng, ids, centres, spec):
    """Images of identities `ids`: identity centre + within-identity noise; see _ivf for the two kinds."""
    import numpy as np

    noise = rng.standard_normal((len(ids), centres.shape[1]), dtype=np.float32)
    if kind == "isotropic":  # the original generator: unnormalised, isotropic noise (cos ~ 0.7 within an identity)
        return centres[ids] + np.float32(0.65) * noise
    x = centres[ids] + noise * spec
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_gallery(rng, n: int, options: dict, dim: int = 512, per_id: int = 20, nq: int = 1000):
    """(gallery [n, dim] float32, queries [nq, dim], query identities [nq], noise scale or None): n // per_id
    identities of per_id images each (gallery row i is identity i // per_id), queries further images of random
    gallery identities; options["ivf_features"] "reid" (default) or "isotropic" and the "ivf_*" knobs, see _ivf.
    Also used by benchmarks/gallery_scale.py."""
    import numpy as np

    kind = options.get("ivf_features", "reid")
    nid = n // per_id
    if kind == "isotropic":
        centres = rng.standard_normal((nid, dim), dtype=np.float32)
        spec = None
    else:
        spec = np.float32(options.get("ivf_noise", 0.6))
        groups = rng.standard_normal((int(options.get("ivf_groups", 2000)), dim), dtype=np.float32)
        g = float(options.get("ivf_group", 0.98))
        centres = (np.float32(g) * groups[rng.integers(0, len(groups), nid)]
                   + np.float32(np.sqrt(1 - g * g)) * rng.standard_normal((nid, dim), dtype=np.float32))
        del groups
    gallery = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in chunks: the noise of 1M x 512 at once would be another 2 GB
        stop = min(start + 100_000, n)
        gallery[start:stop] = _ivf_features(kind, rng, np.arange(start, stop) // per_id, centres, spec)
    q_ids = rng.integers(0, nid, nq)
    queries = _ivf_features(kind, rng, q_ids, centres, spec)
    return gallery, queries, q_ids, spec


def _ivf(options: dict) -> dict:
    """Exact (flat) vs IVF search of 1,000 queries in a 1,000,000 x 512 gallery of identity-clustered features.

    50,000 identities x 20 images; the queries are 1,000 further images of random gallery identities.
    features "isotropic" (the first version): centres N(0, I), images centre + 0.65 N(0, I), not normalised.
    Its identities are equidistant (cosine ~0 between any two), so the exact top-10 of every query is 10 of
    its identity's 20 images (R1 1.000, top-10 all the query's identity): no hard negatives, nothing for k-means
    to find but 50,000 equal clusters - unlike the embeddings of a trained re-ID model.
    features "reid" (default): L2-normalised; identity centres = g x one of 2,000 appearance groups (options["ivf_groups"]) +
    sqrt(1 - g^2) x an identity offset (g = options["ivf_group"], 0.98: people share clothing colours, poses,
    cameras, so identities of one group are each other's hard negatives), images = centre + within-identity
    noise of relative scale options["ivf_noise"] (0.6: cosine ~0.73 within an identity, like a trained model's).
    Both report their own plausibility: exact R1 (top-1 is the query's identity), the share of the exact
    top-10 that is the query's identity, mean cosine within / between identities.
    """
    import numpy as np

    from reidkit.retrieval import GalleryIndex

    n, dim, per_id, nq = options["ivf_size"], 512, 20, 1000
    kind = options.get("ivf_features", "reid")
    rng = np.random.default_rng(0)
    gallery, queries, q_ids, spec = synthetic_gallery(rng, n, options, dim, per_id, nq)
    out: dict = {"base_mb": _rss_mb(), "features": kind, "noise": None if spec is None else float(spec)}

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    out["cos_same_id"] = float((unit(queries[:500]) * unit(gallery[q_ids[:500] * per_id])).sum(1).mean())
    out["cos_other_id"] = float((unit(queries[:500]) @ unit(gallery[rng.integers(0, n, 500)]).T).mean())

    flat = GalleryIndex(dim, "flat")
    start = time.perf_counter()
    flat.add(gallery)
    out["flat_build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    _, exact = flat.search(queries, 10)
    out["flat_qps"] = nq / (time.perf_counter() - start)
    out["exact_r1"] = float(np.mean(exact[:, 0] // per_id == q_ids))
    out["exact_top10_same_id"] = float(np.mean(exact // per_id == q_ids[:, None]))
    del flat

    out["ivf"] = []
    for nlist in options["nlist"]:
        ivf = GalleryIndex(dim, "ivf", nlist=nlist, train_size=options.get("train_size"))
        start = time.perf_counter()
        ivf.add(gallery)
        build_s = time.perf_counter() - start
        for nprobe in options["nprobe"]:
            ivf.set_search_params(nprobe=nprobe)
            start = time.perf_counter()
            _, found = ivf.search(queries, 10)
            qps = nq / (time.perf_counter() - start)
            recall = float(np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, exact)]))
            out["ivf"].append({"nlist": nlist, "nprobe": nprobe, "qps": qps, "recall_at_10": recall,
                               "build_s": build_s, "train_size": ivf.train_size or 40 * nlist})
        del ivf
    out["seconds"] = out["flat_build_s"] + sum(p["build_s"] for p in out["ivf"])
    return out


# ------------------------------------------------------------------------------------------------------ parent
def run_child(python: str, task: str, work: Path, options: dict) -> dict:
    """Run one measurement in a fresh process; its peak RSS is the child's own VmHWM (module docstring)."""
    cmd = [python, os.path.abspath(__file__), "--child", task, "--workdir", str(work),
           "--child-options", json.dumps(options)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, _ = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{task} failed ({python}, exit {proc.returncode}):\n{stderr[-3000:]}")
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def make_problem(work: Path, scale: dict, dim: int, seed: int, distances: bool, rerank_inputs: bool) -> None:
    """Identity-clustered features with camera shifts, labels, and (optionally) the distance matrices."""
    import numpy as np

    from reidkit.metrics import compute_distance_matrix

    rng = np.random.default_rng(seed)
    nq, ng, nid, nd, nc = (scale[k] for k in ("num_query", "num_gallery", "num_ids", "num_distractors",
                                              "num_cams"))
    # identity spread chosen so that Rank-1 ~ 0.95 and mAP ~ 0.7 (a trained ResNet-50 on Market-1501);
    # the (512 / dim)^(1/4) keeps that difficulty at any dimension
    spread = 0.5 * (512 / dim) ** 0.25
    centres = spread * rng.standard_normal((nid + 1, dim), dtype=np.float32)
    cam_shift = 0.15 * rng.standard_normal((nc, dim), dtype=np.float32)
    q_pids = rng.integers(1, nid + 1, nq)
    g_pids = np.concatenate([rng.integers(1, nid + 1, ng - nd), np.zeros(nd, np.int64)])
    q_cams, g_cams = rng.integers(0, nc, nq), rng.integers(0, nc, ng)

    def feats(pids, cams):
        base = np.where((pids == 0)[:, None], spread * rng.standard_normal((len(pids), dim), dtype=np.float32),
                        centres[pids])  # each distractor is someone else
        return (base + cam_shift[cams] + rng.standard_normal((len(pids), dim), dtype=np.float32)).astype(np.float32)

    q_f, g_f = feats(q_pids, q_cams), feats(g_pids, g_cams)
    np.save(work / "q_f.npy", q_f)
    np.save(work / "g_f.npy", g_f)
    np.savez(work / "labels.npz", q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams)
    if distances:
        np.save(work / "q_g.npy", compute_distance_matrix(q_f, g_f))
    if rerank_inputs:
        np.save(work / "q_q.npy", compute_distance_matrix(q_f, q_f))
        np.save(work / "g_g.npy", compute_distance_matrix(g_f, g_f))


def fmt_row(name: str, r: dict, ref: dict | None = None, check: str = "") -> str:
    ratio = f"{ref['seconds'] / r['seconds']:.1f}x" if ref else ""
    return (f"| {name} | {r['seconds']:.2f} | {ratio} | {r['peak_mb'] / 1024:.2f} | "
            f"{(r['peak_mb'] - r['base_mb']) / 1024:.2f} | {check} |")


def eval_section(title: str, prefix: str, size: str, work: Path, me: str, peer: str | None, repeat: int,
                 options: dict, verdicts: list, log) -> list[str]:
    """Alternating runs of reidkit and fastreid on one distance matrix; best time of each, agreement checked."""
    import numpy as np

    runs: dict[str, list[dict]] = {f"{prefix}-reidkit": []} | ({f"{prefix}-fastreid": []} if peer else {})
    for i in range(repeat):
        for task in runs:
            runs[task].append(run_child(peer if "fastreid" in task else me, task, work, options))
            log(f"{task} run {i + 1}: {runs[task][-1]['seconds']:.2f} s")
    best = {task: min(rs, key=lambda r: r["seconds"]) | {"peak_mb": max(r["peak_mb"] for r in rs)}
            for task, rs in runs.items()}
    mine = np.load(work / f"{prefix}-reidkit.npz")
    check = f"mAP {float(mine['mAP']):.4f} R1 {float(mine['cmc'][0]):.4f}"
    if not peer:
        return [fmt_row(f"{title}: reidkit evaluate_rank", best[f"{prefix}-reidkit"], None, check)]
    theirs = np.load(work / f"{prefix}-fastreid.npz")
    diffs = [np.abs(mine["cmc"] - theirs["cmc"]).max(), abs(float(mine["mAP"] - theirs["mAP"]))]
    if np.isfinite(theirs["mINP"]):
        diffs.append(abs(float(mine["mINP"] - theirs["mINP"])))
    diff = float(max(diffs))
    agree = f"max diff vs fastreid {diff:.1e}"
    if prefix == "cuhk03":
        # fastreid sums the CMC in float32 over ~1,400 queries x 10 draws (~1e-6 of rounding); the exact check is
        # that both give the same number of hits at every rank: CMC x valid queries x 10 draws, rounded
        q_pids, g_pids, q_camids, g_camids = _load_labels(work)
        valid = int(((q_pids[:, None] == g_pids[None]) & (q_camids[:, None] != g_camids[None])).any(axis=1).sum())
        hits = [np.round(np.asarray(r["cmc"], np.float64) * valid * 10) for r in (mine, theirs)]
        same = bool(np.array_equal(*hits))
        agree += f"; hits at every rank {'identical' if same else 'DIFFER'}"
        verdicts.append((f"{title}: same single-gallery-shot hits as fastreid at every rank", same))
    ref = best[f"{prefix}-fastreid"]
    speedup = ref["seconds"] / best[f"{prefix}-reidkit"]["seconds"]
    what = "CMC, mAP, mINP" if len(diffs) == 3 else "CMC, mAP"
    verdicts.append((f"{title} >= {TARGETS['eval']}x faster than fastreid Cython: {speedup:.1f}x",
                     speedup >= TARGETS["eval"]))
    verdicts.append((f"{title} agrees with fastreid to 1e-6 ({what}): {diff:.1e}", diff <= 1e-6))
    return [fmt_row(f"{title}: fastreid Cython ({size})", ref),
            fmt_row(f"{title}: reidkit evaluate_rank", best[f"{prefix}-reidkit"], ref, f"{check}; {agree}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default=None,
                        help="python of the peer env (fastreid, torchreid); without it peers are skipped")
    parser.add_argument("--large", action="store_true", help="also the MSMT17-scale and 1M-gallery sections")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension of the synthetic problems")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool in the eval section (best kept)")
    parser.add_argument("--ivf-size", type=int, default=1_000_000)
    parser.add_argument("--nlist", default="4096", help="IVF list counts, comma-separated (e.g. 1024,4096)")
    parser.add_argument("--nprobe", default="32,64,128,256", help="IVF nprobe values, comma-separated")
    parser.add_argument("--train-size", type=int, default=None,
                        help="IVF k-means sample (default GalleryIndex's: 40 x nlist)")
    parser.add_argument("--ivf-features", default="reid", choices=("reid", "isotropic"),
                        help="synthetic 1M gallery: 'reid' (L2-normalised, appearance groups) or 'isotropic' "
                             "(the first version); see _ivf")
    parser.add_argument("--ivf-noise", type=float, default=0.6, help="within-identity noise of 'reid' features")
    parser.add_argument("--ivf-groups", type=int, default=2000, help="appearance groups of 'reid' features")
    parser.add_argument("--ivf-group", type=float, default=0.98,
                        help="weight of the appearance group in a 'reid' identity centre (the rest: sqrt(1 - g^2))")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = child(args.child, Path(args.workdir), json.loads(args.child_options))
        result["peak_mb"] = _rss_mb("VmHWM")
        print("RESULT " + json.dumps(result), flush=True)
        return

    import numpy as np

    sections = args.sections.split(",") if args.sections else \
        ["eval", "cuhk03", "rerank"] + (["large-eval", "large-rerank", "ivf"] if args.large else [])
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    me, peer = sys.executable, args.peer_python
    options = {"ivf_size": args.ivf_size, "nlist": [int(v) for v in args.nlist.split(",")],
               "nprobe": [int(v) for v in args.nprobe.split(",")], "train_size": args.train_size,
               "ivf_features": args.ivf_features, "ivf_noise": args.ivf_noise,
               "ivf_group": args.ivf_group, "ivf_groups": args.ivf_groups}
    tmp = tempfile.TemporaryDirectory(prefix="reidkit-bench-") if args.workdir is None else None
    root = Path(args.workdir or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["| measurement | time (s) | reidkit speed-up | peak RSS (GB) | extra over inputs (GB) | check |",
             "|---|---|---|---|---|---|"]
    verdicts = []

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if "eval" in sections or "rerank" in sections:
        market = root / "market"
        market.mkdir(exist_ok=True)
        log(f"building the Market-scale problem (dim {args.dim}) in {market}")
        make_problem(market, MARKET, args.dim, 0, distances=True, rerank_inputs="rerank" in sections)

    if "eval" in sections:
        lines += eval_section("Market eval", "eval", "3,368 x 15,913", market, me, peer, args.repeat, options,
                              verdicts, log)

    if "cuhk03" in sections:
        cuhk = root / "cuhk03"
        cuhk.mkdir(exist_ok=True)
        log(f"building the CUHK03-scale problem (dim {args.dim}) in {cuhk}")
        make_problem(cuhk, CUHK03, args.dim, 2, distances=True, rerank_inputs=False)
        # one run each: fastreid's cuhk03 evaluator calls np.random.choice ~10 million times (minutes)
        lines += eval_section("CUHK03 single-gallery-shot eval", "cuhk03", "1,400 x 5,332", cuhk, me, peer,
                              1, options, verdicts, log)

    if "rerank" in sections:
        res = {}
        for task in ((["rerank-torchreid"] if peer else []) +
                     ["rerank-reidkit", "rerank-reidkit-module", "rerank-reidkit-features"]):
            log(f"{task} ...")
            res[task] = run_child(peer if "torchreid" in task else me, task, market, options)
            log(f"{task}: {res[task]['seconds']:.2f} s, peak {res[task]['peak_mb'] / 1024:.2f} GB")
        mine = np.load(market / "rerank-reidkit.npy")
        from_feats = np.load(market / "rerank-reidkit-features.npy")
        feat_diff = float(np.abs(mine - from_feats).max())
        ref = res.get("rerank-torchreid")
        if ref:
            diff = float(np.abs(mine - np.load(market / "rerank-torchreid.npy")).max())
            lines.append(fmt_row("Market re-ranking: torchreid re_ranking", ref))
            lines.append(fmt_row("Market re-ranking: reidkit re_ranking", res["rerank-reidkit"], ref,
                                 f"max abs diff vs torchreid {diff:.1e}"))
            module = res["rerank-reidkit-module"]
            mod_diff = float(np.abs(np.load(market / "rerank-reidkit-module.npy")
                                    - np.load(market / "rerank-torchreid.npy")).max())
            lines.append(fmt_row("Market re-ranking: reidkit re_ranking, rerank.py without the package __init__ "
                                 f"(torch imported: {module['torch_imported']})", module, ref,
                                 f"max abs diff vs torchreid {mod_diff:.1e}; peak {module['peak_mb'] / ref['peak_mb']:.2f}"
                                 " of torchreid's"))
            lines.append(fmt_row("Market re-ranking: reidkit re_ranking_from_features",
                                 res["rerank-reidkit-features"], ref, f"max abs diff vs re_ranking {feat_diff:.1e}"))
            speedup = ref["seconds"] / res["rerank-reidkit"]["seconds"]
            mem = res["rerank-reidkit"]["peak_mb"] / ref["peak_mb"]
            verdicts.append((f"re-ranking >= {TARGETS['rerank']}x faster than torchreid: {speedup:.1f}x",
                             speedup >= TARGETS["rerank"]))
            verdicts.append((f"re-ranking peak memory <= 1/4 of torchreid's: {mem:.2f}",
                             mem <= TARGETS["rerank_memory"]))
            mod_mem = module["peak_mb"] / ref["peak_mb"]
            log(f"for information: rerank.py alone (no torch, no sklearn) {module['seconds']:.2f} s "
                f"({ref['seconds'] / module['seconds']:.1f}x), peak {module['peak_mb'] / 1024:.2f} GB = {mod_mem:.2f} "
                "of torchreid's: what `from reidkit.metrics import re_ranking` would cost with a lazy "
                "reidkit.metrics/__init__")
            # for information (not the target): the same ratio without each process's library baseline, and
            # the ratio of the memory each call adds to its loaded inputs
            mine_r, ref_r = res["rerank-reidkit"], ref
            no_lib = (mine_r["peak_mb"] - mine_r["lib_mb"]) / (ref_r["peak_mb"] - ref_r["lib_mb"])
            extra = (mine_r["peak_mb"] - mine_r["base_mb"]) / (ref_r["peak_mb"] - ref_r["base_mb"])
            log(f"re-ranking memory, reidkit / torchreid: peak {mem:.2f}; peak less libraries "
                f"({mine_r['lib_mb'] / 1024:.2f} vs {ref_r['lib_mb'] / 1024:.2f} GB) {no_lib:.2f}; "
                f"added to the inputs {extra:.3f}")
            verdicts.append((f"re-ranking agrees with torchreid to 1e-5: {diff:.1e}", diff <= 1e-5))
        else:
            lines.append(fmt_row("Market re-ranking: reidkit re_ranking", res["rerank-reidkit"]))
            lines.append(fmt_row("Market re-ranking: reidkit re_ranking_from_features",
                                 res["rerank-reidkit-features"], None, f"max abs diff vs re_ranking {feat_diff:.1e}"))

    if "large-eval" in sections or "large-rerank" in sections:
        msmt = root / "msmt"
        msmt.mkdir(exist_ok=True)
        log(f"building the MSMT17-scale problem (dim {args.dim}) in {msmt}")
        make_problem(msmt, MSMT, args.dim, 1, distances=False, rerank_inputs=False)
        for section, task, limit in (("large-eval", "large-eval-reidkit", TARGETS["large_eval_gb"]),
                                     ("large-rerank", "large-rerank-reidkit", TARGETS["large_rerank_gb"])):
            if section not in sections:
                continue
            log(f"{task} ...")
            r = run_child(me, task, msmt, options)
            log(f"{task}: {r['seconds']:.1f} s, peak {r['peak_mb'] / 1024:.2f} GB")
            what = ("MSMT17 eval from features: reidkit (11,659 x 82,161)" if section == "large-eval" else
                    "MSMT17 re-ranking from features: reidkit (93,820 items)")
            check = f"mAP {r['mAP']:.4f} R1 {r['rank1']:.4f}" if section == "large-eval" else "torchreid: cannot run"
            lines.append(fmt_row(what, r, None, check))
            verdicts.append((f"{section} peak memory <= {limit} GB: {r['peak_mb'] / 1024:.2f} GB",
                             r["peak_mb"] / 1024 <= limit))

    if "ivf" in sections:
        log(f"ivf: {args.ivf_size:,} x 512 gallery ({args.ivf_features} features), 1,000 queries ...")
        r = run_child(me, "ivf-reidkit", root, options)
        log(f"ivf features {r['features']} (noise {r['noise']}, groups {args.ivf_groups}, weight {args.ivf_group}): cosine within identity {r['cos_same_id']:.3f}, "
            f"between {r['cos_other_id']:.3f}; exact R1 {r['exact_r1']:.3f}, exact top-10 of the query's "
            f"identity {r['exact_top10_same_id']:.3f}")
        lines.append(f"| {args.ivf_size:,} x 512 gallery ({r['features']}): exact (flat) search | "
                     f"{1000 / r['flat_qps']:.2f} | {r['flat_qps']:.0f} queries/s | {r['peak_mb'] / 1024:.2f} | | "
                     f"recall@10 1 (reference); R1 {r['exact_r1']:.3f} |")
        passing = [p for p in r["ivf"] if p["recall_at_10"] >= TARGETS["ivf_recall"]]
        for p in r["ivf"]:
            lines.append(f"| IVF{p['nlist']} (trained on {p['train_size']:,}), nprobe {p['nprobe']} | "
                         f"{1000 / p['qps']:.2f} | {p['qps']:.0f} queries/s ({p['qps'] / r['flat_qps']:.1f}x exact) | "
                         f"| | recall@10 {p['recall_at_10']:.3f} |")
        for nlist in dict.fromkeys(p["nlist"] for p in r["ivf"]):
            build = next(p["build_s"] for p in r["ivf"] if p["nlist"] == nlist)
            log(f"index build: flat {r['flat_build_s']:.1f} s, IVF{nlist} (train + add) {build:.1f} s")
        best = max(passing, key=lambda p: p["qps"]) if passing else None
        verdicts.append((f"IVF recall@10 >= {TARGETS['ivf_recall']} of exact ({r['features']} features): " +
                         (f"IVF{best['nlist']} nprobe {best['nprobe']}: {best['recall_at_10']:.3f} at "
                          f"{best['qps']:.0f} q/s vs exact {r['flat_qps']:.0f} q/s" if best else "not reached"),
                         best is not None and best["qps"] > r["flat_qps"]))

    print()
    print("\n".join(lines))
    print()
    for text, ok in verdicts:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
