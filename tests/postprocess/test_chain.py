"""The post-processing chain as a whole and the `reidkit postprocess` command, on hand-built cases."""
import numpy as np
import pytest

from reidkit.cli import main as reidkit_main
from reidkit.metrics import re_ranking
from reidkit.postprocess import STAGES, ChainInputs, ChainParams, iter_chain, run_chain
from reidkit.features.files import save_features
from reidkit.postprocess.rerank import RerankParams, rerank_distances
from reidkit.postprocess.submission import rank_gallery, read_submission


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_rerank_distances_square_the_distances():
    rng = np.random.default_rng(0)
    f = unit(rng.standard_normal((9, 4)))
    d = np.clip(2 - 2 * f @ f.T, 0, None)
    params = RerankParams(k1=3, k2=2, lambda_value=0.2)
    out = rerank_distances(d[:3, 3:], d[:3, :3], d[3:, 3:], params)
    # the re-ranking without squaring, fed d squared, is the same computation
    squared = re_ranking(d[:3, 3:] ** 2, d[:3, :3] ** 2, d[3:, 3:] ** 2, k1=3, k2=2, lambda_value=0.2,
                         square_input=False)
    np.testing.assert_allclose(out, squared, atol=1e-5)
    unsquared = re_ranking(d[:3, 3:], d[:3, :3], d[3:, 3:], k1=3, k2=2, lambda_value=0.2, square_input=False)
    assert not np.allclose(out, unsquared, atol=1e-3)


def camera_case():
    """One query (cam 0) of vehicle 1; gallery: a vehicle-2 image from cam 0 that looks most similar (shared
    background), then vehicle 1's two-image track in cam 1, then vehicle 3 in cam 2."""
    query = unit([[1.0, 0.2, 0.0]])
    gallery = unit([[1.0, 0.25, 0.05], [0.9, 0.4, 0.0], [0.85, 0.5, 0.0], [0.0, 0.3, 1.0]])
    tracks = [np.array([0]), np.array([1, 2]), np.array([3])]
    inputs = ChainInputs(query, gallery, tracks, query_cam=np.array([0]), gallery_cam=np.array([0, 1, 1, 2]))
    return inputs, np.array([1]), np.array([2, 1, 1, 3])


def test_chain_yields_every_stage_and_the_camera_penalty_fixes_the_case():
    inputs, _, _ = camera_case()
    params = ChainParams(rerank=RerankParams(k1=2, k2=1))
    stages = list(iter_chain(inputs, params))
    assert [s for s, _ in stages] == list(STAGES)
    ranked = {stage: rank_gallery(dist)[0].tolist() for stage, dist in stages}
    assert ranked["raw"][0] == 0  # the same-camera distractor first
    assert ranked["camera_penalties"][:2] == [1, 2]  # -0.3 on the query's camera: the true track first
    np.testing.assert_allclose(run_chain(inputs, params, until="track_smoothing"), stages[2][1])
    with pytest.raises(ValueError, match="unknown stage"):
        run_chain(inputs, params, until="nonsense")


def test_missing_inputs_switch_their_steps_off():
    inputs, _, _ = camera_case()
    bare = ChainInputs(inputs.query_f, inputs.gallery_f)
    stages = dict(iter_chain(bare, ChainParams(rerank=RerankParams(k1=2, k2=1))))
    for stage in ("query_expansion", "track_smoothing", "camera_penalties", "suppression"):
        np.testing.assert_allclose(stages[stage], stages["raw"], atol=1e-6)  # one query, no tracks, no cameras


def write_case(tmp_path, suffix=".npz"):
    inputs, q_pids, g_pids = camera_case()
    names = [f"000{i}.jpg" for i in range(4)]
    path = save_features(tmp_path / f"f{suffix}", {
        "query_f": inputs.query_f, "gallery_f": inputs.gallery_f, "query_label": q_pids, "gallery_label": g_pids,
        "query_cam": inputs.query_cam, "gallery_cam": inputs.gallery_cam, "gallery_name": names})
    tracks = tmp_path / "test_track.txt"
    tracks.write_text("0000.jpg\n0001.jpg 0002.jpg\n0003.jpg\n")  # AICity layout: one track per line
    return path, tracks, inputs


def test_postprocess_command_writes_the_chain_ranking(tmp_path, capsys):
    features, tracks, inputs = write_case(tmp_path)
    sub = tmp_path / "track2.txt"
    argv = ["postprocess", str(features), "--tracks", str(tracks), "--cameras-from-features", "--evaluate",
            "--k1", "2", "--k2", "1", "-o", str(sub)]
    assert reidkit_main(argv) == 0
    printed = capsys.readouterr().out
    assert "+ re-ranking (full chain)" in printed and "raw features" in printed
    params = ChainParams(rerank=RerankParams(k1=2, k2=1, lambda_value=0.2))
    expected = rank_gallery(run_chain(inputs, params)) + 1
    assert read_submission(sub, 4) == expected.tolist()
    assert expected[0, 0] == 2  # 1-based: gallery image 1 (vehicle 1, cam 1)


def test_postprocess_command_errors(tmp_path, capsys):
    features, tracks, _ = write_case(tmp_path)
    bare = save_features(tmp_path / "bare.npz", {"query_f": np.eye(2), "gallery_f": np.eye(2)})
    assert reidkit_main(["postprocess", str(bare), "--tracks", str(tracks), "-o", str(tmp_path / "s.txt")]) == 2
    assert "--gallery-names" in capsys.readouterr().err
    assert reidkit_main(["postprocess", str(bare), "--evaluate", "-o", str(tmp_path / "s.txt")]) == 2
    assert "lacks query_label" in capsys.readouterr().err
