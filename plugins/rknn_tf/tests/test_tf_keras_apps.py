"""Keras application architectures (seeded random weights), frozen to .pb, against TensorFlow."""

from __future__ import annotations

import pytest
from tf_models import KERAS_APPS, assert_close, keras_model_dir, load_meta, run_rknn

HEAVY = {"resnet50", "densenet121", "inception_v3"}  # 20-30 s each to generate on a cold cache


@pytest.mark.parametrize("app", [pytest.param(a, marks=pytest.mark.heavy) if a in HEAVY else a for a in sorted(KERAS_APPS)])
def test_keras_application_matches_tensorflow(app):
    folder = keras_model_dir(app)
    meta, ref = load_meta(folder)
    x = ref["in0"]
    (ours,) = run_rknn(folder / "model.pb", meta["inputs"], [list(x.shape[1:])], meta["outputs"], [x])
    assert ours.shape == (1, 1000)
    assert_close(ours, ref["out0"])
