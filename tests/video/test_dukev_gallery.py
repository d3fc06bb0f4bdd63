"""DukeMTMC-VideoReID galleries: the standard one (query tracklets matched on (pid, folder) removed) by default, the
AITL reference's (every gallery tracklet sharing a query's folder name removed, the queries appended) as the
dataset option gallery=reference; on a tiny DukeV-layout folder written here."""
from __future__ import annotations

from pathlib import Path

import pytest

from reidkit.config import load_config
from reidkit.data.base import build_dataset
from reidkit.data.video import DUKEV_ATTRIBUTES
from reidkit.engine.launch import check_config
from reidkit.errors import ConfigError

from .replicas import labels_for, make_dukev


def folders(tracklets) -> list[tuple[int, int, str]]:
    return [(pid, camid, Path(frames[0]).parent.name) for frames, pid, camid in tracklets]


def test_standard_gallery_is_the_default(tmp_path):
    make_dukev(tmp_path)
    data = build_dataset("dukemtmcvidreid", root=tmp_path)
    # Query (3, "0010") is removed; (4, "0010") shares only the folder name with it and stays.
    assert folders(data.gallery) == [(3, 3, "0012"), (4, 2, "0010"), (4, 4, "track_b")]
    assert build_dataset("dukemtmcvidreid", root=tmp_path, gallery="standard").gallery == data.gallery


def test_reference_gallery_drops_query_folder_names_and_appends_the_queries(tmp_path):
    query_row = {(3, 1, "0010"): labels_for(DUKEV_ATTRIBUTES, 7)}
    train_rows = {(pid, cam, track): labels_for(DUKEV_ATTRIBUTES, i) for i, (pid, cam, track) in
                  enumerate([(1, 1, "0001"), (1, 2, "0002"), (2, 3, "0001"), (2, 1, "0005")])}
    make_dukev(tmp_path, attribute_rows={**train_rows, **query_row})
    data = build_dataset("dukemtmcvidreid", root=tmp_path, gallery="reference")
    assert folders(data.gallery) == [(3, 3, "0012"), (4, 4, "track_b"), (3, 0, "0010"), (4, 1, "0011")]
    assert data.gallery[-2:] == data.query
    # The appended queries keep their attribute rows (None where the CSV has none).
    assert data.attributes["gallery"][-2:] == data.attributes["query"]
    assert data.attributes["gallery"][-2] == tuple(labels_for(DUKEV_ATTRIBUTES, 7))
    assert data.attributes["gallery"][-1] is None


def test_gallery_option_is_checked(tmp_path):
    make_dukev(tmp_path)
    with pytest.raises(ConfigError, match="data.options.gallery='ref': .*Available: reference, standard"):
        build_dataset("dukemtmcvidreid", root=tmp_path, gallery="ref")
    cfg = load_config("configs/video/asta_aitl_dukev.yaml", ["data.root=DATA", "data.options={gallery: reference}"])
    check_config(cfg)  # a dataset option of dukemtmcvidreid
    assert load_config("configs/video/asta_aitl_dukev.yaml", ["data.root=DATA"]).data.options == {}
