"""ROC over query-gallery pairs (metrics/verification.py) against a straightforward reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from reidkit.metrics._checks import MetricInputError
from reidkit.metrics.verification import verification_roc


def _clustered(num_ids: int, per_id: int, dim: int, noise: float, rng: np.random.Generator, *, cams: int = 3):
    centers = rng.normal(size=(num_ids, dim))
    pids = np.repeat(np.arange(num_ids), per_id)
    feats = centers[pids] + noise * rng.normal(size=(len(pids), dim))
    camids = rng.integers(0, cams, len(pids))
    return feats.astype(np.float32), pids, camids


def _reference_pairs(qf, gf, q_pids, g_pids, q_camids, g_camids):
    """Every pair in two plain loops, with the Market exclusion (same identity and camera: left out)."""
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    scores, labels = [], []
    for i in range(len(qf)):
        for j in range(len(gf)):
            if q_pids[i] == g_pids[j] and q_camids[i] == g_camids[j]:
                continue
            scores.append(float(qn[i] @ gn[j]))
            labels.append(int(q_pids[i] == g_pids[j]))
    return np.asarray(scores), np.asarray(labels)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    feats, pids, camids = _clustered(num_ids=40, per_id=6, dim=16, noise=1.3, rng=rng)
    query = np.arange(len(pids)) % 3 == 0
    gallery_extra = rng.normal(size=(30, 16)).astype(np.float32)  # distractors of other identities
    gf = np.concatenate([feats[~query], gallery_extra])
    g_pids = np.concatenate([pids[~query], np.arange(1000, 1030)])
    g_camids = np.concatenate([camids[~query], np.zeros(30, np.int64)])
    return feats[query], gf, pids[query], g_pids, camids[query], g_camids


def test_roc_matches_sklearn_reference(split):
    qf, gf, q_pids, g_pids, q_camids, g_camids = split
    scores, labels = _reference_pairs(*split)
    result = verification_roc(qf, gf, q_pids, g_pids, q_camids, g_camids, fprs=(1e-1, 1e-2, 1e-3))
    assert result.num_positive == labels.sum() and result.num_negative == (1 - labels).sum()
    fpr, tpr, _ = roc_curve(labels, scores)
    negatives = np.sort(scores[labels == 0])[::-1]
    for point in result.points:
        # sklearn: the best TPR among thresholds whose FPR stays within the target
        assert point.tpr == pytest.approx(tpr[fpr <= point.target_fpr].max(), abs=1e-12)
        accepted = math.floor(point.target_fpr * len(negatives))
        assert point.threshold == pytest.approx(negatives[accepted], abs=1e-6)
        # no ties in random data: exactly `accepted` negatives pass
        assert point.fpr == accepted / len(negatives) <= point.target_fpr
        assert point.tpr == pytest.approx(np.mean(scores[labels == 1] > negatives[accepted]), abs=1e-12)
    assert 0.0 < result.points[-1].tpr < result.points[0].tpr < 1.0  # the data are neither trivial nor hopeless


def test_blocks_change_nothing(split):
    whole = verification_roc(*split, block_rows=10_000)
    blocked = verification_roc(*split, block_rows=3)
    assert whole.points == blocked.points
    np.testing.assert_array_equal(whole.curve_tpr, blocked.curve_tpr)
    metrics = whole.metrics()
    assert set(metrics) == {f"verify/{kind}@{f}" for kind in ("TPR", "threshold") for f in ("1e-2", "1e-3", "1e-4")}
    assert whole.threshold(1e-3) == metrics["verify/threshold@1e-3"]


def test_same_camera_matches_are_excluded():
    # One identity seen twice by camera 0: without the exclusion that pair would be a perfect positive.
    qf = np.array([[1.0, 0.0]], np.float32)
    gf = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    result = verification_roc(qf, gf, [5], [5, 5, 7], [0], [0, 1, 1], fprs=(0.5,))
    assert (result.num_positive, result.num_negative) == (1, 1)
    # the only positive (score 0) is below the only negative (0.6): no FPR within 0.5 accepts it
    assert result.points[0].tpr == 0.0 and result.points[0].threshold == pytest.approx(0.6)


def test_curve_is_monotone_and_ends_at_one(split):
    result = verification_roc(*split)
    assert np.all(np.diff(result.curve_fpr) >= 0) and np.all(np.diff(result.curve_tpr) >= 0)
    assert result.curve_fpr[-1] == pytest.approx(1.0) and result.curve_tpr[-1] == pytest.approx(1.0)


def test_bad_input_is_one_clear_error(split):
    qf, gf, q_pids, g_pids, q_camids, g_camids = split
    with pytest.raises(MetricInputError, match="q_pids has length"):
        verification_roc(qf, gf, q_pids[:-1], g_pids, q_camids, g_camids)
    with pytest.raises(MetricInputError, match="different"):
        verification_roc(qf[:1], gf[:1], [1], [1], [0], [1])
    with pytest.raises(MetricInputError, match="fprs"):
        verification_roc(*split, fprs=(0.0,))
