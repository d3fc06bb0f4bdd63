"""Video tests: one CPU thread (the machine is shared), tiny frames (64x32), T=4."""
from __future__ import annotations

import torch

torch.set_num_threads(1)
