"""Model tests: one CPU thread (the machine is shared) and a tiny input batch."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tiny_batch() -> torch.Tensor:
    return torch.randn(4, 3, 64, 32, generator=torch.Generator().manual_seed(0))
