"""Each AICity post-processing step on a hand-built case (docs/specs/vehicle-aicity.md section 3)."""
import numpy as np
import pytest

from reidkit.postprocess.cameras import (PenaltyWeights, camera_penalty, cluster_camera_features,
                                         complete_cam_clusters, within_set_penalty)
from reidkit.postprocess.groups import groups_from_labels, labels_from_groups, same_group, singleton_labels
from reidkit.postprocess.suppression import progressive_suppression
from reidkit.postprocess.tracks import high_quality_mask, smooth_tracks


def unit(*rows):
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# --- groups -------------------------------------------------------------------------------------------------

def test_labels_from_groups_and_back():
    labels = labels_from_groups([[3, 1], [0]], 5)
    assert labels.tolist() == [1, 0, -1, 0, -1]
    assert [g.tolist() for g in groups_from_labels(labels)] == [[1, 3], [0]]
    assert singleton_labels(labels).tolist() == [1, 0, 2, 0, 3]
    assert same_group(labels).astype(int).tolist()[1] == [0, 1, 0, 1, 0]
    assert not same_group(labels)[2, 4]  # two unlabelled items are not one group


@pytest.mark.parametrize("groups, message", [([[0, 1], [1, 2]], "index 1 is in group 0 and in group 1"),
                                             ([[0, 7]], "holds index 7, expected 0..4")])
def test_labels_from_groups_rejects_bad_groups(groups, message):
    with pytest.raises(ValueError, match=message):
        labels_from_groups(groups, 5)


# --- tracks -------------------------------------------------------------------------------------------------

def test_smooth_tracks_adds_half_the_track_mean():
    g = unit([1, 0], [0, 1], [1, 1])
    out = smooth_tracks(g, [np.array([0, 1])])
    # mean of the track = (0.5, 0.5); g0 + 0.5 * mean = (1.25, 0.25)
    np.testing.assert_allclose(out[0], unit([1.25, 0.25])[0], atol=1e-6)
    np.testing.assert_allclose(out[1], unit([0.25, 1.25])[0], atol=1e-6)
    np.testing.assert_allclose(out[2], g[2], atol=1e-6)  # in no track: unchanged


def test_smooth_tracks_uses_high_quality_members_only():
    g = unit([1, 0], [0, 1])
    hq = high_quality_mask(np.array([200 * 100, 100 * 100]), 2)  # 20000 px passes, 10000 px does not
    assert hq.tolist() == [True, False]
    out = smooth_tracks(g, [np.array([0, 1])], hq)
    np.testing.assert_allclose(out[0], [1, 0], atol=1e-6)
    np.testing.assert_allclose(out[1], unit([0.5, 1])[0], atol=1e-6)
    # no high-quality member at all: every member counts
    out = smooth_tracks(g, [np.array([0, 1])], np.array([False, False]))
    np.testing.assert_allclose(out[0], unit([1.25, 0.25])[0], atol=1e-6)


# --- camera inputs --------------------------------------------------------------------------------------------

def test_cluster_camera_features_groups_close_features():
    rng = np.random.default_rng(0)
    centers = np.eye(3)[:2]
    feats = np.concatenate([centers[0] + 0.01 * rng.standard_normal((6, 3)),
                            centers[1] + 0.01 * rng.standard_normal((6, 3)), [[0.0, 0.0, 1.0]]])
    labels = cluster_camera_features(feats, eps=0.3, min_samples=3)
    assert len(set(labels[:6])) == 1 and len(set(labels[6:12])) == 1 and labels[0] != labels[6]
    assert labels[12] == -1


def test_complete_cam_clusters_fills_unknowns_of_two_label_groups():
    cam_cluster = np.array([-1, 3, 3, 2, 3, -1, -1, 4, -1])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])
    out = complete_cam_clusters(cam_cluster, groups)
    # group 0 {-1, 3}: filled; group 1 {2, 3, -1}: ambiguous, kept; group 2 {-1, 4}: filled; item 8: no group
    assert out.tolist() == [3, 3, 3, 2, 3, -1, 4, 4, -1]
    assert cam_cluster[0] == -1  # input untouched


def test_camera_penalty_by_hand():
    q_cam = np.array([1, -1])
    g_cam = np.array([1, 2, -1])
    q_cc = np.array([-1, 7])
    g_cc = np.array([7, 7, -1])
    direction = np.array([[0.9, 0.9, 0.9], [0.3, 0.1, 0.25]])
    expected = np.array([[0.3, 0.0, 0.0],            # known camera 1: only same-camera; no cluster
                         [0.1 + 0.2, 0.2, 0.1]])     # unknown camera: direction >= 0.25, and cluster 7
    np.testing.assert_allclose(camera_penalty(q_cam, g_cam, q_cc, g_cc, direction), expected, atol=1e-6)
    # without direction input the unknown-camera query gets only its cluster penalty
    np.testing.assert_allclose(camera_penalty(q_cam, g_cam, q_cc, g_cc)[1], [0.2, 0.2, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match=r"direction similarity: expected shape \(2, 3\)"):
        camera_penalty(q_cam, g_cam, direction_sim=np.zeros((3, 2)))


def test_within_set_penalty_spares_own_group():
    cams = np.array([0, 0, 0, 1])
    groups = np.array([5, 5, -1, -1])
    pen = within_set_penalty(cams, None, groups, weights=PenaltyWeights(same_camera=0.3))
    expected = np.array([[0, 0, .3, 0], [0, 0, .3, 0], [.3, .3, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(pen, expected, atol=1e-6)


# --- progressive same-camera suppression ------------------------------------------------------------------------

def test_progressive_suppression_by_hand():
    scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    g_cam = np.array([0, 0, 1, 0])
    tracks = np.array([0, 0, 1, 2])
    out = progressive_suppression(scores, g_cam, tracks)
    # j=0: t=0 (cam 0, track 0): item 3 -0.3        -> [.9, .8, .7, .3]
    # j=1: t=1 (cam 0, track 0): item 3 -0.15       -> [.9, .8, .7, .15]
    # j=2: t=2 (cam 1): nothing else in camera 1
    # j=3: t=3 (cam 0, track 2): items 0, 1 -0.075  -> [.825, .725, .7, .15]
    np.testing.assert_allclose(out, [[0.825, 0.725, 0.7, 0.15]], atol=1e-6)
    np.testing.assert_allclose(scores, [[0.9, 0.8, 0.7, 0.6]])  # input untouched


def test_progressive_suppression_moves_same_camera_distractor_below_true_match():
    scores = np.array([[0.9, 0.85, 0.8]])
    out = progressive_suppression(scores, np.array([0, 0, 1]), np.array([0, 1, 2]), steps=1)
    assert np.argsort(-out[0]).tolist() == [0, 2, 1]
    np.testing.assert_allclose(out, [[0.9, 0.55, 0.8]], atol=1e-6)


def test_progressive_suppression_unknown_camera_uses_direction_and_clusters():
    scores = np.array([[0.9, 0.5, 0.4, 0.3]])
    g_cam = np.array([-1, -1, -1, -1])
    gg_direction = np.array([[1.0, 0.3, 0.1, 0.1]] + [[0.0] * 4] * 3)
    clusters = np.array([4, -1, 4, -1])
    out = progressive_suppression(scores, g_cam, None, clusters, gg_direction, steps=1)
    # t = item 0: item 1 direction 0.3 >= 0.25 -> -0.1; item 2 same cam-cluster -> -0.1; itself spared
    np.testing.assert_allclose(out, [[0.9, 0.4, 0.3, 0.3]], atol=1e-6)


def test_progressive_suppression_is_per_query():
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.8, 0.9]])
    out = progressive_suppression(scores, np.array([0, 0, 0]), np.array([0, 1, 2]), steps=1)
    np.testing.assert_allclose(out, [[0.9, 0.5, -0.2], [-0.2, 0.5, 0.9]], atol=1e-6)
