import pytest

from reidkit.errors import RegistryError
from reidkit.registry import Registry
from reidkit.utils.io import atomic_open, atomic_write_text


def test_registry_lookup_and_suggestion():
    reg = Registry("widget")

    @reg.register("resnet50")
    def make():
        return 1

    assert reg.get("resnet50") is make
    assert "resnet50" in reg and reg.names() == ["resnet50"]
    with pytest.raises(RegistryError, match="resnet5O.*Did you mean 'resnet50'"):
        reg.get("resnet5O")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("resnet50")(make)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    target = tmp_path / "results.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.txt"]


def test_top_level_api_names_resolve():
    import reidkit

    for name in reidkit.__all__:
        assert getattr(reidkit, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        reidkit.trian


def test_metrics_names_resolve_lazily():
    import reidkit.metrics as metrics

    assert all(getattr(metrics, name) is not None for name in metrics.__all__)
    with pytest.raises(AttributeError, match="'reidkit.metrics' has no attribute 're_rank'"):
        metrics.re_rank
