import numpy as np
import pytest
import torch
from oracles.rank import reference_cuhk03, reference_cuhk03_fastreid, reference_market

from reidkit.metrics import MetricInputError, evaluate_rank, evaluate_rank_from_features
from reidkit.metrics.distance import compute_distance_matrix


def random_problem(rng, nq, ng, nid, ncam, levels=None, dtype=np.float32):
    q_pids, g_pids = rng.integers(0, nid, nq), rng.integers(0, nid, ng)
    q_cams, g_cams = rng.integers(0, ncam, nq), rng.integers(0, ncam, ng)
    dist = rng.random((nq, ng)) + 0.4 * (q_pids[:, None] != g_pids[None, :])
    if levels:  # few distinct values: many exact ties, between matches and non-matches too
        dist = np.round(dist * levels) / levels
    return dist.astype(dtype), q_pids, g_pids, q_cams, g_cams


@pytest.mark.filterwarnings("ignore:features collapsed")
@pytest.mark.parametrize("ties", ["pessimistic", "argsort"])
@pytest.mark.parametrize("levels", [None, 4, 30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_market_matches_reference_on_random_problems(levels, dtype, ties):
    rng = np.random.default_rng(0 if levels is None else levels)
    for trial in range(3):
        problem = random_problem(rng, 40, 150, 12, 3, levels, dtype)
        expected = reference_market(*problem, max_rank=10, ties=ties)
        cmc, mAP, mINP = evaluate_rank(*problem, max_rank=10, block_rows=int(rng.integers(1, 45)), ties=ties)
        np.testing.assert_allclose(cmc, expected[0], atol=1e-12)
        assert mAP == pytest.approx(expected[1], abs=1e-12)
        assert mINP == pytest.approx(expected[2], abs=1e-12)


def test_hand_computed_query():
    # ranked gallery: [neg, pos, junk(same cam), neg, pos] -> after removing junk: neg pos neg pos
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], np.float32)
    g_pids, g_cams = np.array([2, 1, 1, 3, 1]), np.array([0, 1, 0, 1, 2])
    cmc, mAP, mINP = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=4)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])
    assert mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert mINP == pytest.approx(2 / 4)


def test_query_without_valid_match_is_skipped_and_all_skipped_raises():
    dist = np.array([[0.1, 0.2], [0.3, 0.1]], np.float32)
    # query 0 (pid 5) has no gallery item at all; query 1 has a match in another camera at rank 2
    cmc, mAP, _ = evaluate_rank(dist, [5, 1], [1, 2], [0, 0], [1, 1], max_rank=2)
    np.testing.assert_allclose(cmc, [0, 1])
    assert mAP == pytest.approx(0.5)
    with pytest.raises(MetricInputError, match="no query has a valid match"):
        evaluate_rank(dist, [5, 6], [1, 2], [0, 0], [1, 1], max_rank=2)


def test_single_camera_leaves_no_valid_query():
    dist = np.array([[0.1, 0.2]], np.float32)
    with pytest.raises(MetricInputError, match="no query has a valid match"):
        evaluate_rank(dist, [1], [1, 2], [0], [0, 0], max_rank=2)


def test_tie_between_matches_does_not_change_the_result():
    # two matches at the same distance take ranks 1 and 2 whatever their order
    dist = np.array([[0.5, 0.5, 0.7]], np.float32)
    cmc, mAP, mINP = evaluate_rank(dist, [1], [1, 1, 2], [0], [1, 2, 1], max_rank=3)
    np.testing.assert_allclose(cmc, [1, 1, 1])
    assert mAP == 1.0 and mINP == 1.0


def test_tie_between_match_and_non_match_follows_numpy_argsort_on_request():
    # as fastreid / torchreid: the order of equal distances is np.argsort's
    dist = np.array([[0.5, 0.5, 0.5, 0.5, 0.1]], np.float32)
    q = ([1], [2, 1, 2, 1, 3], [0], [1, 1, 1, 1, 1])
    expected = reference_market(dist, np.array(q[0]), np.array(q[1]), np.array(q[2]), np.array(q[3]), 5)
    with pytest.warns(UserWarning, match="depend on the gallery order"):
        cmc, mAP, mINP = evaluate_rank(dist, *q, max_rank=5, ties="argsort")
    np.testing.assert_allclose(cmc, expected[0])
    assert (mAP, mINP) == pytest.approx(expected[1:])


def test_tie_between_match_and_non_match_ranks_the_match_last_by_default():
    # ranked: the pid-3 item (0.1), then the four at 0.5 with the two non-matches (pid 2) first
    dist = np.array([[0.5, 0.5, 0.5, 0.5, 0.1]], np.float32)
    with pytest.warns(UserWarning, match=r"features collapsed: 100% of query rows \(1 of 1\)"):
        cmc, mAP, mINP = evaluate_rank(dist, [1], [1, 2, 1, 2, 3], [0], [1, 1, 1, 1, 1], max_rank=5)
    np.testing.assert_allclose(cmc, [0, 0, 0, 1, 1])
    assert mAP == pytest.approx((1 / 4 + 2 / 5) / 2) and mINP == pytest.approx(2 / 5)


@pytest.mark.parametrize("protocol", ["market", "cuhk03"])
def test_constant_distances_give_the_same_metrics_for_every_gallery_order(protocol):
    """A collapsed model (every distance equal) must not score by the gallery's order: before, a gallery that
    happened to list the matches first gave mAP 1."""
    rng = np.random.default_rng(8)
    _, q_pids, g_pids, q_cams, g_cams = random_problem(rng, 20, 60, 6, 3)
    dist = np.full((20, 60), 0.25, np.float32)
    results = []
    for trial in range(4):
        perm = rng.permutation(60) if trial else np.argsort(g_pids != q_pids[0], kind="stable")
        with pytest.warns(UserWarning, match="features collapsed: 100% of query rows"):
            cmc, mAP, mINP = evaluate_rank(dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm], max_rank=10,
                                           protocol=protocol, seed=0)
        results.append((cmc, mAP, mINP))
    for cmc, mAP, mINP in results[1:]:
        if protocol == "market":  # cuhk03 draws one item per identity by gallery position: its CMC is random
            np.testing.assert_array_equal(cmc, results[0][0])
        assert (mAP, mINP) == pytest.approx(results[0][1:], abs=1e-12)
    assert results[0][1] < 0.5  # the lower bound, not the gallery order's luck


@pytest.mark.filterwarnings("ignore:features collapsed")
def test_partly_tied_distances_do_not_depend_on_the_gallery_order():
    rng = np.random.default_rng(9)
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(rng, 30, 80, 8, 3, levels=5)
    base = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10, block_rows=7)
    for _ in range(3):
        perm = rng.permutation(80)
        cmc, mAP, mINP = evaluate_rank(dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm], max_rank=10)
        np.testing.assert_array_equal(cmc, base[0])
        assert (mAP, mINP) == pytest.approx(base[1:], abs=1e-12)
    # the peers' order does depend on it here: the test is not passing by construction
    argsort = {evaluate_rank(dist[:, p], q_pids, g_pids[p], q_cams, g_cams[p], max_rank=10, ties="argsort")[1]
               for p in (rng.permutation(80) for _ in range(4))}
    assert len(argsort) > 1


def test_healthy_distances_give_no_collapse_warning():
    import warnings

    rng = np.random.default_rng(10)
    problem = random_problem(rng, 30, 80, 8, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_rank(*problem, max_rank=10)


def test_distractors_count_as_non_matches_and_ignore_pids_removes_items():
    dist = np.array([[0.1, 0.2, 0.3]], np.float32)
    g_pids, g_cams = np.array([0, -1, 1]), np.array([1, 1, 1])
    cmc, mAP, _ = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=3)
    assert mAP == pytest.approx(1 / 3) and cmc[0] == 0 and cmc[2] == 1
    cmc, mAP, _ = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=2, ignore_pids=[-1])
    assert mAP == pytest.approx(1 / 2)
    np.testing.assert_allclose(cmc, [0, 1])


def test_cuhk03_single_shot_matches_reference_with_same_draws():
    rng = np.random.default_rng(3)
    problem = random_problem(rng, 25, 90, 10, 2)
    expected = reference_cuhk03(*problem, max_rank=8, num_repeats=4, seed=11)
    cmc, mAP, mINP = evaluate_rank(*problem, max_rank=8, protocol="cuhk03", num_repeats=4, seed=11, block_rows=7)
    np.testing.assert_allclose(cmc, expected, atol=1e-12)
    # mAP and mINP use the whole kept gallery, as in the Market protocol
    _, market_map, market_minp = evaluate_rank(*problem, max_rank=8)
    assert (mAP, mINP) == pytest.approx((market_map, market_minp))


def test_cuhk03_with_one_image_per_identity_equals_market():
    rng = np.random.default_rng(4)
    dist = rng.random((12, 20)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, 20, 12), np.arange(20)
    q_cams, g_cams = np.zeros(12, int), np.ones(20, int)
    market = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    cuhk = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5, protocol="cuhk03")
    np.testing.assert_allclose(cuhk[0], market[0])


def test_features_variant_equals_distmat_variant():
    rng = np.random.default_rng(5)
    qf, gf = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(70, 8)).astype(np.float32)
    labels = (rng.integers(0, 6, 30), rng.integers(0, 6, 70), rng.integers(0, 3, 30), rng.integers(0, 3, 70))
    for metric in ("sqeuclidean", "cosine"):
        dist = compute_distance_matrix(qf, gf, metric)
        cmc, mAP, mINP = evaluate_rank(dist, *labels, max_rank=10)
        cmc2, mAP2, mINP2 = evaluate_rank_from_features(torch.from_numpy(qf), gf, *labels, max_rank=10,
                                                        metric=metric, block_rows=9)
        np.testing.assert_allclose(cmc2, cmc)
        assert (mAP2, mINP2) == pytest.approx((mAP, mINP))


def test_small_gallery_shortens_cmc_with_warning():
    dist = np.array([[0.2, 0.1]], np.float32)
    with pytest.warns(UserWarning, match="fewer than max_rank"):
        cmc, _, _ = evaluate_rank(dist, [1], [1, 2], [0], [1, 1], max_rank=50)
    np.testing.assert_allclose(cmc, [0, 1])


@pytest.mark.parametrize("args, match", [
    (dict(distmat=np.zeros(3)), "distmat must be a 2-D matrix"),
    (dict(q_pids=[1, 2, 3]), r"q_pids has length 3; expected 2 \(number of queries\)"),
    (dict(g_camids=[0]), r"g_camids has length 1; expected 3 \(number of gallery items\)"),
    (dict(max_rank=0), "max_rank must be an integer >= 1"),
    (dict(protocol="duke"), "protocol must be one of cuhk03, market, self"),
    (dict(distmat=np.full((2, 3), np.nan)), "NaN"),
])
def test_bad_input_names_the_argument(args, match):
    kw = dict(distmat=np.zeros((2, 3)), q_pids=[1, 2], g_pids=[1, 2, 3], q_camids=[0, 0], g_camids=[1, 1, 1],
              max_rank=2)
    kw.update(args)
    with pytest.raises(MetricInputError, match=match):
        evaluate_rank(**kw)


@pytest.mark.filterwarnings("ignore:features collapsed")
@pytest.mark.parametrize("levels", [None, 20])
def test_cuhk03_with_a_random_state_makes_fastreids_draws(levels):
    rng = np.random.default_rng(6)
    problem = random_problem(rng, 30, 120, 12, 2, levels)
    expected = reference_cuhk03_fastreid(*problem, max_rank=10, seed=17)
    cmc, mAP, _ = evaluate_rank(*problem, max_rank=10, protocol="cuhk03", seed=np.random.RandomState(17),
                                block_rows=7, ties="argsort")
    np.testing.assert_allclose(cmc, expected, atol=1e-12)
    assert mAP == pytest.approx(evaluate_rank(*problem, max_rank=10, ties="argsort")[1])
    # a different state gives different draws: the test above is not passing by construction
    other = evaluate_rank(*problem, max_rank=10, protocol="cuhk03", seed=np.random.RandomState(18),
                          ties="argsort")[0]
    assert np.abs(other - expected).max() > 0
