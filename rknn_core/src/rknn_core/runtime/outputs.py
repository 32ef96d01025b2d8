"""What ``inference`` returns: each quantized output as float32 real values (dequantized with the
output's own parameters, as the vendor runtime returns outputs), or with ``want_float=False`` as the
stored integers (the extension mirrors ``rknn_output.want_float`` of the vendor's C runtime API)."""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph
from rknn_core.quant.params import dequantize, quantize


def finish_outputs(graph: Graph, values: list[np.ndarray], want_float: bool = True) -> list[np.ndarray]:
    """``values`` of ``graph.outputs`` as the user gets them; outputs without QuantParams are unchanged."""
    result = []
    for name, value in zip(graph.outputs, values):
        q, value = graph.tensor(name).quant, np.asarray(value)
        stored = value.dtype.kind in "iu"
        if q is None:
            result.append(value)
        elif want_float:
            result.append(dequantize(value, q) if stored else value.astype(np.float32, copy=False))
        else:
            result.append(value if stored else quantize(value, q))
    return result
