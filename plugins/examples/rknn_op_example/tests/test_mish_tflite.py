"""Mish as a TFLite custom op (custom_code ``Mish``) between builtin ops: the builtin parts are checked
against ai-edge-litert, the Mish part against the numpy formula (LiteRT cannot run the custom op)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("rknn_tflite", reason="rknn-tflite is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the TFLite reference) is not installed")
TFLITE_TESTS = pathlib.Path(__file__).resolve().parents[3] / "rknn_tflite" / "tests"
if not (TFLITE_TESTS / "tflite_writer.py").is_file():
    pytest.skip("needs the repository's plugins/rknn_tflite/tests (the .tflite writer)", allow_module_level=True)
sys.path.insert(0, str(TFLITE_TESTS))

from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tflite_writer import TfliteWriter  # noqa: E402

from rknn_core.errors import RknnError  # noqa: E402
from rknn_core.testing import registry_with  # noqa: E402
from rknn_core.toolkit import Toolkit  # noqa: E402

RNG = np.random.default_rng(5)
W = (RNG.standard_normal((4, 3, 3, 3)) * 0.8).astype(np.float32)  # OHWI, as TFLite stores conv weights
B = (RNG.standard_normal(4) * 0.5).astype(np.float32)


def _mish(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 * np.tanh(np.log1p(np.exp(x64)))).astype(np.float32)


def _conv(m: TfliteWriter, x: int) -> int:
    y = m.tensor([1, 6, 6, 4], name="conv")
    m.op("CONV_2D", [x, m.const(W), m.const(B)], [y], "Conv2DOptions", Padding=0, StrideH=1, StrideW=1,
         DilationHFactor=1, DilationWFactor=1)
    return y


def _pool(m: TfliteWriter, x: int) -> int:
    y = m.tensor([1, 3, 3, 4], name="pooled")
    m.op("AVERAGE_POOL_2D", [x], [y], "Pool2DOptions", Padding=1, StrideH=2, StrideW=2, FilterHeight=2,
         FilterWidth=2)
    return y


def _save(folder: pathlib.Path, name: str, *parts) -> str:
    """``parts`` applied in turn to a float input: ``_conv``, ``_pool`` or ``"Mish"`` (the custom op)."""
    m = TfliteWriter()
    t = m.input([1, 6, 6, 3] if parts[0] is _conv else [1, 6, 6, 4])
    for part in parts:
        if part == "Mish":
            y = m.tensor([1, 6, 6, 4], name="mish")
            m.custom_op("Mish", [t], [y])
            t = y
        else:
            t = part(m, t)
    return m.save(str(folder / name), [t])


def _litert(path: str, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=path, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


@pytest.fixture(scope="module")
def registry():
    return registry_with("rknn_op_example.plugin", name="op_example")


def test_tflite_custom_mish_between_builtin_ops(registry, tmp_path):
    x = RNG.uniform(-2, 2, (1, 6, 6, 3)).astype(np.float32)
    tk = Toolkit(registry=registry)
    tk.load("load_tflite", model=_save(tmp_path, "model.tflite", _conv, "Mish", _pool))
    assert "Mish" in [n.op for n in tk.graph.nodes]
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    (ours,) = tk.inference([x[0]], "float32", "nhwc")
    conv = _litert(_save(tmp_path, "conv.tflite", _conv), x)
    assert np.abs(conv).max() > 3  # the reference reaches Mish's curved and linear parts
    reference = _litert(_save(tmp_path, "pool.tflite", _pool), _mish(conv))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_without_the_plugin_the_custom_op_is_named(tmp_path):
    registry = registry_with(object(), name="nothing", exclude=("op_example",))
    with pytest.raises(RknnError, match=r"unsupported TFLite op custom:Mish at operator 1"):
        Toolkit(registry=registry).load("load_tflite", model=_save(tmp_path, "model.tflite", _conv, "Mish"))
