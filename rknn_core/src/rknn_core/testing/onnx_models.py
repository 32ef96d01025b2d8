"""Small ONNX models for op tests: one node, or a few, with inputs shaped like example arrays.

``onnx`` is imported inside the functions: importing this module costs nothing without it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from rknn_core.records import DEFAULT_DOMAINS


def make_model(nodes: Sequence[Any], inputs: dict[str, np.ndarray], outputs: Sequence[str],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17) -> Any:
    """A model whose inputs take the shapes/dtypes of the example arrays; output shapes left to inference.

    Nodes outside the default ONNX domain (``domain="com.example"``) get an opset import (version 1)
    for their domain.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
        [onnx.ValueInfoProto(name=n) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    domains = sorted({n.domain for n in nodes} - set(DEFAULT_DOMAINS))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = min(model.ir_version, 8 if opset <= 17 else 9)
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:  # output types as onnx infers them (float32 when it cannot)
        out.type.CopyFrom(inferred[out.name].type if out.name in inferred
                          else helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, None))
    return model


def single_op(op: str, inputs: dict[str, np.ndarray], initializers: dict[str, np.ndarray] | None = None,
              n_outputs: int = 1, opset: int = 17, input_names: Sequence[str] | None = None,
              domain: str = "", **attrs: Any) -> Any:
    """A one-node model ``op(inputs + initializers)``; ``input_names`` orders them ('' for absent).

    Outputs are ``y0``, ``y1`` ...; ``attrs`` become the node's attributes.
    """
    from onnx import helper

    names = list(input_names) if input_names is not None else list(inputs) + list(initializers or {})
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outputs, domain=domain, **attrs)
    return make_model([node], inputs, outputs, initializers, opset)


def save_model(model: Any, folder: str | None = None) -> str:
    """Write ``model`` as ``folder/model.onnx`` (a new temporary folder when ``None``); returns the path."""
    import onnx

    folder = folder or tempfile.mkdtemp(prefix="rknn-test-")
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    return path
