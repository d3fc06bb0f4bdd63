"""engine/targets.py: which evaluation protocol a target is ranked under."""
import pytest

from reidkit.config import load_config
from reidkit.engine.targets import eval_protocol
from reidkit.errors import ConfigError


class CameraLess:
    eval_protocol = "self"


def test_test_protocol_overrides_the_datasets_own():
    assert eval_protocol(load_config(None), CameraLess()) == "self"
    assert eval_protocol(load_config(None), None) == "market"
    assert eval_protocol(load_config(None, ["test.protocol=cuhk03"]), CameraLess()) == "cuhk03"
    with pytest.raises(ConfigError, match=r"test.protocol='cuhk3': expected one of 'cuhk03', 'market', 'self'; did you mean 'cuhk03'"):
        load_config(None, ["test.protocol=cuhk3"])
