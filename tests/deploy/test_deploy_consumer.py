"""docs/deploy.md's plain onnxruntime consumer (numpy, Pillow and the file's metadata, no reidkit) gives the
Embedder's features: the block is read from the document and run as it is written there."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidkit.deploy.embedder import Embedder
from reidkit.deploy.export import export_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def consumer_namespace() -> dict:
    blocks = re.findall(r"```python\n(# consumer\.py.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/deploy.md holds one ```python block starting with '# consumer.py'"
    assert not re.search(r"^\s*(import|from)\s+reidkit", blocks[0], flags=re.M), "the consumer imports no reidkit"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102  (the project's own documentation)
    return namespace


@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_documented_consumer_matches_the_embedder(checkpoint_of, crops_dir, tmp_path, dynamic_batch):
    path = tmp_path / "model.onnx"
    export_model(checkpoint_of("top_db_net", metrics={"verify/threshold@1e-3": 0.25}), path,
                 dynamic_batch=dynamic_batch, out=lambda line: None)
    model = consumer_namespace()["ReidModel"](str(path))
    images = [Image.open(p) for p in sorted(crops_dir.rglob("*.jpg"))[:5]]
    expected = Embedder.load(path).embed([image.convert("RGB") for image in images])
    assert np.abs(model.embed(images) - expected).max() < 1e-5
    similarity, same = model.same_person(images[0], images[0])
    assert similarity == pytest.approx(1.0, abs=1e-5) and same
    assert model.same_person(images[0], images[1], threshold=0.9999)[1] is False
