"""The reference implementation's state-dict layout, from the copied reference TSV (names and shapes of its
four models), for building reference-layout checkpoints in tests."""
from __future__ import annotations

from pathlib import Path

import torch

TSV = Path(__file__).parent / "data" / "top-dropblock-checkpoint-keys.tsv"
# TSV variant -> reidkit model name
VARIANTS = {
    "top-db-net": "top_db_net",
    "top-db-net-no-reg": "top_db_net_no_reg",
    "top-db-net-no-drop": "top_db_net_no_drop",
    "bdb-baseline": "bdb",
}


def reference_entries(variant: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of the reference model `variant`, from the copied reference TSV."""
    entries = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, key, shape = line.split("\t")
        if name == variant:
            entries.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))))
    assert entries, f"no entries for {variant} in {TSV}"
    return entries


def random_reference_state(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A reference-layout state dict (with the DataParallel `module.` prefix) of random tensors."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_entries(variant):
        if key.endswith("num_batches_tracked"):
            state["module." + key] = torch.tensor(int(torch.randint(1, 1000, (), generator=gen)))
        elif key.endswith("running_var"):
            state["module." + key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state["module." + key] = torch.randn(shape, generator=gen)
    return state
