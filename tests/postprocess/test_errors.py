"""Bad inputs inside the post-processing chain are one-line ReidkitErrors (the CLI prints them without a
traceback), not bare ValueErrors."""
import numpy as np
import pytest

from reidkit.errors import PostprocessInputError, ReidkitError
from reidkit.postprocess.chain import ChainInputs, run_chain
from reidkit.postprocess.groups import labels_from_groups
from reidkit.postprocess.submission import rank_gallery


def test_chain_input_errors_are_reidkit_errors():
    with pytest.raises(ReidkitError, match="gallery tracks: group 0 holds index 5"):
        labels_from_groups([[0, 5]], 3, name="gallery tracks")
    with pytest.raises(ReidkitError, match="NaN or infinite"):
        rank_gallery(np.array([[0.1, np.nan]]))
    inputs = ChainInputs(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32))
    with pytest.raises(PostprocessInputError, match="unknown stage 'rerank'"):
        run_chain(inputs, until="rerank")
    with pytest.raises(ReidkitError, match="expected \\[Q, D\\] and \\[G, D\\] matrices"):
        ChainInputs(np.eye(2, dtype=np.float32), np.ones((2, 3), dtype=np.float32))
