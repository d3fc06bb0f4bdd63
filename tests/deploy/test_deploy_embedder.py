"""The Embedder: inputs (paths, PIL, RGB/BGR arrays), the test transform reproduced exactly, crops from frames,
batching, and one clear error per bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import reidkit
from reidkit.data.transforms import build_transforms
from reidkit.deploy.embedder import Embedder
from reidkit.deploy.preprocess import preprocess, recipe_preprocessing
from reidkit.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def embedder(checkpoint_of):
    return Embedder.load(checkpoint_of("top_db_net"), batch_size=4)


@pytest.fixture(scope="module")
def images(crops_dir):
    return sorted(crops_dir.rglob("*.jpg"))


def test_is_the_packages_embedder_and_describes_itself(embedder, checkpoint_of):
    assert reidkit.Embedder is Embedder
    assert embedder.input_size == (64, 32) and embedder.feature_dim == 40 and embedder.threshold is None
    assert set(embedder.fingerprint) == {"model", "weights_sha256", "input_size", "mean", "std", "normalized",
                                         "feature_dim", "precision"}
    assert len(embedder.fingerprint["weights_sha256"]) == 64
    other = Embedder.load(checkpoint_of("top_db_net", seed=1))
    assert other.fingerprint["weights_sha256"] != embedder.fingerprint["weights_sha256"]


@pytest.mark.parametrize("recipe, size", [("top_db_net", (64, 32)), ("vehicle", (70, 35))])
def test_preprocessing_is_the_recipes_test_transform(images, recipe, size):
    steps = recipe_preprocessing(64, 32, recipe)
    assert steps.input_size == size  # the vehicle recipe tests at 1.1x
    transform = build_transforms(64, 32, train=False, recipe=recipe)
    expected = torch.stack([transform(Image.open(p).convert("RGB")) for p in images]).numpy()
    assert np.abs(preprocess(images, steps) - expected).max() < 1e-6


def test_paths_pil_images_and_arrays_give_the_same_features(embedder, images):
    pil = [Image.open(p).convert("RGB") for p in images]
    rgb = [np.asarray(image) for image in pil]
    from_paths = embedder.embed(images)
    assert from_paths.shape == (len(images), 40) and from_paths.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(embedder.embed(pil), from_paths)
    np.testing.assert_array_equal(embedder.embed(rgb), from_paths)
    np.testing.assert_array_equal(embedder.embed([a[..., ::-1] for a in rgb], bgr=True), from_paths)
    assert np.abs(embedder.embed([a[..., ::-1].copy() for a in rgb]) - from_paths).max() > 1e-3  # BGR as RGB differs


def test_batch_size_does_not_change_features(checkpoint_of, images):
    one = Embedder.load(checkpoint_of("top_db_net"), batch_size=1).embed(images)
    many = Embedder.load(checkpoint_of("top_db_net"), batch_size=64).embed(images)
    assert np.abs(one - many).max() < 1e-5


def test_embed_crops_cuts_clips_and_orders_boxes(embedder, images):
    people = [np.asarray(Image.open(p).convert("RGB").resize((64, 128))) for p in images[:3]]
    frame = np.full((200, 300, 3), 90, np.uint8)
    frame[10:138, 20:84], frame[60:188, 150:214], frame[72:200, 236:300] = people
    boxes = np.array([[20, 10, 84, 138], [150, 60, 214, 188], [236, 72, 330, 230]], float)  # the last sticks out
    feats = embedder.embed_crops(frame, boxes)
    assert feats.shape == (3, 40)
    np.testing.assert_allclose(feats, embedder.embed(people), atol=1e-6)  # clipped box = the visible crop
    np.testing.assert_allclose(embedder.embed_crops(frame[..., ::-1].copy(), boxes, bgr=True), feats, atol=1e-6)
    np.testing.assert_allclose(embedder.embed_crops(frame, boxes[::-1]), feats[::-1], atol=1e-6)
    assert embedder.embed_crops(frame, np.zeros((0, 4))).shape == (0, 40)
    assert embedder.embed_crops(frame, []).shape == (0, 40)


def test_bad_images_are_one_clear_error_naming_them(embedder, crops_dir, tmp_path):
    good = np.zeros((64, 32, 3), np.uint8)
    cases = [
        ([], DatasetError, "the image list is empty"),
        ([good, np.zeros((64, 32, 4), np.uint8)], DatasetError, r"image 1: array of shape \(64, 32, 4\)"),
        ([np.zeros((64, 32), np.uint8)], DatasetError, r"image 0: array of shape \(64, 32\)"),
        ([good.astype(np.float32)], DatasetError, "image 0: .*dtype float32; expected H x W x 3 uint8"),
        ([np.zeros((0, 32, 3), np.uint8)], DatasetError, "image 0: .* has no pixels"),
        ([Image.new("L", (32, 64))], DatasetError, "image 0: PIL image of mode 'L'; expected an RGB image"),
        ([tmp_path / "missing.jpg"], DatasetError, "image 0 .*missing.jpg.*cannot be read"),
        ([3.5], DatasetError, "image 0: a float"),
        (good, ConfigError, "got a single ndarray; wrap it in a list"),
        (str(crops_dir / "tiny.png"), ConfigError, "got a single str"),
    ]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    cases.append(([good] * 5 + [tmp_path / "broken.jpg"], DatasetError, "image 5 .*broken.jpg"))
    for images, error, message in cases:
        with pytest.raises(error, match=message):
            embedder.embed(images)


def test_bad_boxes_are_one_clear_error_naming_them(embedder):
    frame = np.zeros((100, 80, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"box 1 \[90.0, 10.0, 120.0, 50.0\] has no area inside the 80x100 frame"):
        embedder.embed_crops(frame, [[0, 0, 10, 10], [90, 10, 120, 50]])
    with pytest.raises(DatasetError, match=r"box 0 .* has no area"):
        embedder.embed_crops(frame, [[10, 10, 10, 50]])
    with pytest.raises(DatasetError, match=r"boxes_xyxy must be an \[N, 4\] array"):
        embedder.embed_crops(frame, [[0, 0, 10]])
    with pytest.raises(DatasetError, match="finite"):
        embedder.embed_crops(frame, [[0, 0, np.nan, 10]])
    with pytest.raises(DatasetError, match=r"image 0: array of shape \(100, 80\)"):
        embedder.embed_crops(frame[..., 0], [[0, 0, 10, 10]])


def test_video_embedder_takes_clips_of_its_length(checkpoint_of, images):
    video = Embedder.load(checkpoint_of("video_tp"))
    assert video.seq_len == 3
    feats = video.embed_clips([images[:3], images[3:6]])
    assert feats.shape == (2, video.feature_dim)
    with pytest.raises(DatasetError, match="clip 1 has 2 frames; this model takes clips of 3"):
        video.embed_clips([images[:3], images[:2]])
    with pytest.raises(ConfigError, match="video model .* use embed_clips"):
        video.embed(images[:3])
    with pytest.raises(ConfigError, match="image model: use embed"):
        Embedder.load(checkpoint_of("bot")).embed_clips([images[:3]])


def test_bad_load_options_are_one_clear_error(checkpoint_of):
    with pytest.raises(ConfigError, match="backend='onnxruntime': checkpoints run with backend='torch'"):
        Embedder.load(checkpoint_of("bot"), backend="onnxruntime")
    with pytest.raises(ConfigError, match="batch_size must be a positive int"):
        Embedder.load(checkpoint_of("bot"), batch_size=0)
