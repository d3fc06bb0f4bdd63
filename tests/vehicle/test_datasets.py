"""Vehicle dataset readers on tiny replicas of each layout (fixtures in conftest.py)."""
from pathlib import Path

import pytest

import reidkit.data.vehicle  # noqa: F401  (registers the vehicle datasets until data/__init__ imports them)
from reidkit.data.base import build_dataset
from reidkit.data.vehicle.aicity import decode_xml, read_train_labels
from reidkit.data.vehicle.common import read_track_file
from reidkit.data.vehicle.vehicleid import NUM_DRAWS
from reidkit.errors import DatasetError


def read_veri(root, **options):
    return build_dataset("veri776", root, **options)


def read_aicity(root, **options):
    return build_dataset("aicity2020", root, **options)


def read_vehicleid(root, **options):
    return build_dataset("vehicleid", root, **options)


def names(samples):
    return [Path(p).name for p, _, _ in samples]


# --- VeRi-776 -------------------------------------------------------------------------------------------------

def test_veri_reader(veri_root):
    splits = read_veri(veri_root)  # finds root/VeRi
    assert [(pid, cam) for _, pid, cam in splits.train] == [(0, 0), (0, 1), (2, 0), (2, 2), (1, 19)]
    assert [(pid, cam) for _, pid, cam in splits.query] == [(2, 1), (5, 2)]
    assert names(splits.gallery)[:2] == ["0005_c001_00077000_0.jpg", "0002_c001_00030000_0.jpg"]  # list order
    assert [(pid, cam) for _, pid, cam in splits.gallery] == [(5, 0), (2, 0), (2, 0), (2, 1), (5, 2)]
    assert [t.tolist() for t in splits.gallery_tracks] == [[1, 2], [0], [3], [4]]
    assert all(Path(p).is_file() for p, _, _ in splits.train + splits.query + splits.gallery)


def test_veri_tracks_follow_skipped_images(veri_root):
    broken = veri_root / "VeRi" / "image_test" / "0002_c001_00030000_0.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        splits = read_veri(veri_root, verify_images=True, skip_bad_images=True)
    assert len(splits.gallery) == 4
    # the track of the broken image keeps its other member, re-indexed into the shorter gallery
    assert [t.tolist() for t in splits.gallery_tracks] == [[1], [0], [2], [3]]
    assert names(splits.gallery)[1] == "0002_c001_00030005_1.jpg"


def test_veri_errors(veri_root, tmp_path):
    bad = veri_root / "VeRi" / "image_test" / "car_12.jpg"
    bad.write_bytes(b"")
    (veri_root / "VeRi" / "name_test.txt").write_text("car_12.jpg\n")
    (veri_root / "VeRi" / "test_track.txt").unlink()
    with pytest.raises(DatasetError, match=r"car_12.jpg: expected a name like 0001_c001"):
        read_veri(veri_root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no dataset folder under .*looked in.*Expected layout"):
        read_veri(tmp_path / "empty")
    (veri_root / "VeRi" / "name_test.txt").write_text("0009_c001_00000001_0.jpg\n")
    with pytest.raises(DatasetError, match="1 listed images are missing .* 0009_c001_00000001_0.jpg"):
        read_veri(veri_root)


# --- track files ----------------------------------------------------------------------------------------------

def test_read_track_file_aicity_and_veri_lines(tmp_path):
    names = ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg", "000005.jpg"]
    aicity = tmp_path / "test_track.txt"
    aicity.write_text("000003.jpg 000001.jpg \n\n000002.jpg 000002.jpg 000005.jpg\n")
    assert [t.tolist() for t in read_track_file(aicity, names)] == [[2, 0], [1, 4]]

    veri_names = ["0002_c002_00030600_0.jpg", "0002_c002_00030605_1.jpg", "0005_c003_00077350_0.jpg"]
    veri = tmp_path / "veri_track.txt"
    veri.write_text("0002_c002 0002_c002_00030600_0.jpg 0002_c002_00030605_1.jpg \n"
                    "0005_c003_00077350_0.jpg 0005_c003_00077350_0.jpg\n")
    assert [t.tolist() for t in read_track_file(veri, veri_names)] == [[0, 1], [2]]


def test_read_track_file_errors(tmp_path):
    names = ["a.jpg", "b.jpg", "c.jpg"]
    bad = tmp_path / "t.txt"
    bad.write_text("a.jpg b.jpg\nc.jpg zzz.jpg\n")
    with pytest.raises(DatasetError, match=r"t.txt:2: image 'zzz.jpg' is not in the gallery"):
        read_track_file(bad, names)
    bad.write_text("a.jpg b.jpg\nb.jpg c.jpg\n")
    with pytest.raises(DatasetError, match=r"t.txt:2: image 'b.jpg' is already in the track of line 1"):
        read_track_file(bad, names)
    with pytest.raises(DatasetError, match="does not exist"):
        read_track_file(tmp_path / "missing.txt", names)


# --- AICity 2020 ----------------------------------------------------------------------------------------------

def test_aicity_labels_honour_declared_gb2312(aicity_root):
    base = aicity_root / "AIC20_track2" / "AIC20_ReID"
    raw = (base / "train_label.xml").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the replica really is gb2312 (its comment is Chinese)
    labels = read_train_labels(base / "train_label.xml")
    assert labels[0] == ("000001.jpg", 1, 9) and labels[-1] == ("000024.jpg", 6, 10)
    assert decode_xml('<?xml version="1.0" encoding="gb2312"?><a>车</a>'.encode("gb2312"), base).endswith("车</a>")


def test_aicity_label_errors(aicity_root):
    path = aicity_root / "AIC20_track2" / "AIC20_ReID" / "train_label.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="utf-8"?><T><Items><Item imageName="1.jpg" vehicleID="7"/>'
                     b"</Items></T>")
    with pytest.raises(DatasetError, match="Item 1 lacks cameraID"):
        read_train_labels(path)
    path.write_bytes(b'<?xml version="1.0" encoding="utf-8"?><T><Item imageName="1.jpg" vehicleID="x" cameraID="c1"/></T>')
    with pytest.raises(DatasetError, match=r"vehicleID='x'"):
        read_train_labels(path)
    path.write_bytes(b'<?xml version="1.0" encoding="gb2312"?><T>\xff\xff</T>')
    with pytest.raises(DatasetError, match="not valid gb2312"):
        read_train_labels(path)
    path.write_bytes(b'<?xml version="1.0" encoding="no-such-codec"?><T/>')
    with pytest.raises(DatasetError, match="which Python does not know"):
        read_train_labels(path)
    path.write_bytes(b"<T><Item></T>")
    with pytest.raises(DatasetError, match="not well-formed XML"):
        read_train_labels(path)


def test_aicity_test_split(aicity_root):
    splits = read_aicity(aicity_root)
    assert len(splits.train) == 24 and {pid for _, pid, _ in splits.train} == set(range(6))
    assert {cam for _, _, cam in splits.train} == {9, 10}
    assert names(splits.query) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert all(pid == -1 and cam == -1 for _, pid, cam in splits.query + splits.gallery)
    assert [t.tolist() for t in splits.gallery_tracks] == [[0, 2], [1, 3, 4]]


def test_aicity_validation_split(aicity_root):
    splits = read_aicity(aicity_root, split="val", num_val_ids=2, val_seed=3)
    val_pids = {pid for _, pid, _ in splits.query}
    assert len(val_pids) == 2 and {pid for _, pid, _ in splits.gallery} == val_pids
    assert len(splits.query) == 2 * 2  # one per (identity, camera)
    assert len({(pid, cam) for _, pid, cam in splits.query}) == len(splits.query)
    assert len(splits.gallery) == 2 * 2 * 1 and len(splits.train) == 4 * 4
    assert {pid for _, pid, _ in splits.train} == set(range(4))  # relabelled after holding out
    train_paths = {p for p, _, _ in splits.train}
    assert train_paths.isdisjoint(p for p, _, _ in splits.query + splits.gallery)
    again = read_aicity(aicity_root, split="val", num_val_ids=2, val_seed=3)
    assert again.query == splits.query
    other = read_aicity(aicity_root, split="val", num_val_ids=2, val_seed=4)
    assert {pid for _, pid, _ in other.query} != val_pids or other.query != splits.query
    with pytest.raises(DatasetError, match="num_val_ids=6, expected 1..5"):
        read_aicity(aicity_root, split="val", num_val_ids=6)
    with pytest.raises(DatasetError, match=r"split='dev', expected one of \('test', 'val'\)"):
        read_aicity(aicity_root, split="dev")


# --- VehicleID ------------------------------------------------------------------------------------------------

def test_vehicleid_draws(vehicleid_root):
    galleries = []
    for draw in range(NUM_DRAWS):
        splits = read_vehicleid(vehicleid_root, test_size=800, draw=draw)
        gallery_pids = [pid for _, pid, _ in splits.gallery]
        assert sorted(gallery_pids) == list(range(200, 208))  # one image per test vehicle
        assert len(splits.query) == 8 * 2
        assert set(names(splits.query)).isdisjoint(names(splits.gallery))
        assert {cam for _, _, cam in splits.query} == {0} and {cam for _, _, cam in splits.gallery} == {1}
        galleries.append(tuple(names(splits.gallery)))
    assert len(set(galleries)) > 1  # random draws, not always the first image
    assert tuple(names(read_vehicleid(vehicleid_root, draw=4).gallery)) == galleries[4]  # seeded
    splits = read_vehicleid(vehicleid_root)
    assert {pid for _, pid, _ in splits.train} == {0, 1, 2, 3} and len(splits.train) == 12


def test_vehicleid_errors(vehicleid_root):
    with pytest.raises(DatasetError, match=r"test_size=900, expected one of \(800, 1600, 2400\)"):
        read_vehicleid(vehicleid_root, test_size=900)
    with pytest.raises(DatasetError, match="draw=10, expected 0..9"):
        read_vehicleid(vehicleid_root, draw=10)
    with pytest.raises(DatasetError, match="test_list_1600.txt does not exist"):
        read_vehicleid(vehicleid_root, test_size=1600)
    listing = vehicleid_root / "VehicleID_V1.0" / "train_test_split" / "train_list.txt"
    listing.write_text("0000001 12\n0000002\n")
    with pytest.raises(DatasetError, match=r"train_list.txt:2: expected '<image name> <vehicle id>'"):
        read_vehicleid(vehicleid_root)
