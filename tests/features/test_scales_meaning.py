"""Test-time scales read as side-length factors (reidkit) or as image-area factors (the AICity reference's --ms)."""
import math

import numpy as np
import pytest

from reidkit.cli import main as reidkit_main
from reidkit.errors import ConfigError, RegistryError
from reidkit.features.files import load_features
from reidkit.features.pipeline import SCALE_MEANINGS, side_scales
from tests.vehicle.test_extract_cli import setup  # noqa: F401  (fixture: a VeRi replica and two checkpoints)


def test_area_scales_are_square_roots_of_side_scales():
    assert SCALE_MEANINGS.names() == ["area", "side"]
    assert side_scales([1, 1.1]) == (1.0, 1.1)
    assert side_scales([1, 1.1], "area") == (1.0, math.sqrt(1.1))
    assert side_scales([4], "area") == (2.0,)
    with pytest.raises(ConfigError, match=r"--scales \[1, -1\]: expected positive"):
        side_scales([1, -1], "area", "--scales")
    with pytest.raises(RegistryError, match="unknown scale meaning 'volume'"):
        side_scales([1], "volume")


def test_extract_accepts_the_reference_ms_setting(setup, capsys):  # noqa: F811
    root, a, _ = setup

    def features(name, *args):
        out = root / name
        assert reidkit_main(["extract", "--weights", str(a), "--output", str(out), "--flip", *args]) == 0
        return load_features(out)["gallery_f"]

    reference = features("ms.mat", "--scales", "1,1.1", "--scales-meaning", "area")
    sides = features("side.mat", "--scales", "1", str(math.sqrt(1.1)))
    np.testing.assert_allclose(reference, sides, atol=1e-6)
    assert not np.allclose(reference, features("plain.mat", "--scales", "1", "1.1"), atol=1e-4)
    assert reidkit_main(["extract", "--weights", str(a), "--output", str(root / "x.mat"), "--scales", "1",
                         "--scales-meaning", "volume"]) == 2
    assert "unknown scale meaning 'volume'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reidkit_main(["extract", "--weights", str(a), "--output", str(root / "x.mat"), "--scales", "1,x"])
    assert "expected numbers such as 1 1.1 or 1,1.1" in capsys.readouterr().err
