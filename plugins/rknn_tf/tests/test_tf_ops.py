"""Small TF graphs covering every converted op family, against TensorFlow's values."""

from __future__ import annotations

import pytest
from tf_graphs import graph_dir
from tf_models import assert_close, load_meta, run_rknn

CASES = ["conv_block", "dilated", "resize", "slicing", "math_ops", "shapes"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("level", [0, 3])
def test_ops_match_tensorflow(case, level):
    folder = graph_dir(case)
    meta, ref = load_meta(folder)
    feeds = [ref[f"in{i}"] for i in range(len(meta["inputs"]))]
    sizes = [list(x.shape[1:]) if x.shape[0] == 1 else list(x.shape) for x in feeds]  # batch 1 implied
    outs = run_rknn(folder / "model.pb", meta["inputs"], sizes, meta["outputs"], feeds, optimization_level=level)
    assert len(outs) == len(meta["outputs"])
    for i, ours in enumerate(outs):
        assert_close(ours, ref[f"out{i}"])
