import pytest
import torch

from engine_helpers import TinyReid


@pytest.fixture
def tiny_model() -> TinyReid:
    torch.manual_seed(0)
    return TinyReid()
