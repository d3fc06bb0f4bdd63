"""`reidkit postprocess --crop-features`: detector-crop features added before normalising (q_f + q_f_crop)."""
import numpy as np
import pytest

from reidkit.cli import main as reidkit_main
from reidkit.errors import PostprocessInputError
from reidkit.features.files import save_features
from reidkit.postprocess import ChainInputs, ChainParams, RerankParams, run_chain
from reidkit.postprocess.crops import add_crop_features
from reidkit.postprocess.submission import rank_gallery, read_submission


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def feature_files(tmp_path, *, crop_names=None, with_names=True):
    rng = np.random.default_rng(0)
    names = {"query": [f"q{i}.jpg" for i in range(3)], "gallery": [f"g{i}.jpg" for i in range(6)]}
    image = {f"{side}_f": unit(rng.standard_normal((len(n), 4))) for side, n in names.items()}
    crops = {f"{side}_f": unit(rng.standard_normal((len(n), 4))) for side, n in names.items()}
    if with_names:
        image.update({f"{side}_name": n for side, n in names.items()})
        crops.update({f"{side}_name": n for side, n in (crop_names or names).items()})
    return (save_features(tmp_path / "images.npz", image), save_features(tmp_path / "crops.npz", crops), image,
            crops)


def test_the_sum_is_normalised(tmp_path):
    _, _, image, crops = feature_files(tmp_path)
    out = add_crop_features(image, crops)
    for side in ("query", "gallery"):
        summed = image[f"{side}_f"] + crops[f"{side}_f"]
        np.testing.assert_allclose(out[f"{side}_f"], summed / np.linalg.norm(summed, axis=1, keepdims=True),
                                   atol=1e-6)
    assert list(out["gallery_name"]) == list(image["gallery_name"])


def test_the_command_ranks_the_summed_features(tmp_path):
    images, crop_file, image, crops = feature_files(tmp_path)
    sub = tmp_path / "track2.txt"
    argv = ["postprocess", str(images), "--crop-features", str(crop_file), "--k1", "3", "--k2", "2", "-o", str(sub)]
    assert reidkit_main(argv) == 0
    summed = ChainInputs(image["query_f"] + crops["query_f"], image["gallery_f"] + crops["gallery_f"])
    plain = ChainInputs(image["query_f"], image["gallery_f"])
    params = ChainParams(rerank=RerankParams(k1=3, k2=2))
    expected = rank_gallery(run_chain(summed, params)) + 1
    assert read_submission(sub, 6) == expected.tolist()
    assert expected.tolist() != (rank_gallery(run_chain(plain, params)) + 1).tolist()  # the crops matter here


def test_names_out_of_order_name_the_first_mismatch(tmp_path, capsys):
    swapped = {"query": ["q0.jpg", "q2.jpg", "q1.jpg"], "gallery": [f"g{i}.jpg" for i in range(6)]}
    images, crop_file, image, crops = feature_files(tmp_path, crop_names=swapped)
    with pytest.raises(PostprocessInputError, match=r"query entry 1 is 'q2.jpg', .* has 'q1.jpg' \(2 of 3"):
        add_crop_features(image, crops, images, crop_file)
    assert reidkit_main(["postprocess", str(images), "--crop-features", str(crop_file),
                         "-o", str(tmp_path / "s.txt")]) == 2
    err = capsys.readouterr().err
    assert "reidkit: error: --crop-features" in err and "query entry 1" in err and "Traceback" not in err
    assert not (tmp_path / "s.txt").exists()


def test_row_counts_and_missing_names_are_refused(tmp_path):
    _, _, image, crops = feature_files(tmp_path)
    short = {**crops, "gallery_f": crops["gallery_f"][:5], "gallery_name": crops["gallery_name"][:5]}
    with pytest.raises(PostprocessInputError, match="5 gallery rows, features has 6"):
        add_crop_features(image, short)
    nameless = {k: v for k, v in crops.items() if not k.endswith("_name")}
    with pytest.raises(PostprocessInputError, match="cannot be checked"):
        add_crop_features(image, nameless)
    wider = {**crops, "query_f": np.ones((3, 5), np.float32)}
    with pytest.raises(PostprocessInputError, match=r"query_f is \(3, 5\)"):
        add_crop_features(image, wider)


def test_files_without_names_are_matched_by_position(tmp_path):
    _, _, image, crops = feature_files(tmp_path, with_names=False)
    out = add_crop_features(image, crops)
    assert out["query_f"].shape == (3, 4)


def test_output_onto_the_crop_file_is_refused(tmp_path, capsys):
    images, crop_file, _, _ = feature_files(tmp_path)
    assert reidkit_main(["postprocess", str(images), "--crop-features", str(crop_file), "-o", str(crop_file)]) == 2
    assert "--crop-features file" in capsys.readouterr().err
