"""An ``onnx.backend`` adapter: ONNX models run through the vendor flow on the PC simulator.

``RknnBackend.prepare(model)`` imports the model with ``RKNN.load_onnx`` and builds it without
quantization; ``rep.run(inputs)`` runs ``RKNN.inference`` in the simulator. This is how onnx's own
conformance suite (``onnx.backend.test.BackendTest``) checks the toolkit::

    import onnx.backend.test
    from rknn_onnx.backend import RknnBackend
    globals().update(onnx.backend.test.BackendTest(RknnBackend, __name__).test_cases)

Inputs keep their dtype (floating inputs are given to ``inference`` with their own ``data_type``) and
are given in the model's own layout, so nothing is transposed. A model with dynamic input sizes is
built once per distinct set of input shapes (``load_onnx(input_size_list=...)``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from rknn_core.errors import RknnError
from rknn_core.log import collect_errors
from rknn_core.runtime.inputs import DATA_TYPES

_DEVICES = ("CPU",)


@contextlib.contextmanager
def _step(what: str) -> Iterator[Any]:
    """Runs one vendor-flow step; a ``-1``/``None`` result or an ``E`` line becomes an RknnError."""
    outcome: dict[str, Any] = {}
    with collect_errors() as lines:
        yield outcome
    if lines or outcome.get("result", 0) in (-1, None):
        raise RknnError(f"{what} failed: {'; '.join(lines) or 'no error line was logged'}")


_SIZE_OPS = ("ConstantOfShape", "Range")  # ops whose every input is a size


def _rank(vi: onnx.ValueInfoProto) -> int | None:
    tensor = vi.type.tensor_type
    return len(tensor.shape.dim) if vi.type.HasField("tensor_type") and tensor.HasField("shape") else None


def parameter_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs that set sizes rather than carry data: scalars and vectors read as a later input of a
    node (shapes, axes, pads, repeats, splits, scales, sizes, ...) or by ConstantOfShape/Range. A
    static-graph compiler needs them as constants, so the backend binds them to each run's values."""
    ranks = {vi.name: _rank(vi) for vi in model.graph.input}
    bound = {name for node in model.graph.node for position, name in enumerate(node.input)
             if ranks.get(name) is not None and ranks[name] <= 1 and (position or node.op_type in _SIZE_OPS)}
    return [vi.name for vi in model.graph.input if vi.name in bound]


def _dynamic(model: onnx.ModelProto, names: Sequence[str]) -> bool:
    """Whether any of the graph inputs ``names`` has a dimension without a fixed size."""
    by_name = {vi.name: vi for vi in model.graph.input}
    return any(not d.HasField("dim_value") or d.dim_value < 0
               for name in names for d in by_name[name].type.tensor_type.shape.dim)


def _bind(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` with the graph inputs in ``values`` turned into initializers holding those values."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    kept = [vi for vi in bound.graph.input if vi.name not in values]
    del bound.graph.input[:]
    bound.graph.input.extend(kept)
    bound.graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in values.items())
    return bound


class RknnBackendRep(BackendRep):
    """A prepared model: one built ``RKNN`` session per set of input shapes and parameter values."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        initialized = {init.name for init in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in initialized]
        self.parameters = [name for name in parameter_inputs(model) if name not in initialized]
        self.data_names = [name for name in self.input_names if name not in self.parameters]
        self.dynamic = _dynamic(model, self.data_names)
        self._sessions: dict[tuple, Any] = {}
        if not self.dynamic and not self.parameters:
            self._session({}, None)

    def _session(self, parameters: dict[str, np.ndarray], shapes: tuple | None) -> Any:
        """The built ``RKNN`` object for these parameter values and data shapes (``None``: the model's)."""
        key = (tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in parameters.items()), shapes)
        if key not in self._sessions:
            from rknn.api import RKNN

            rknn = RKNN()
            options = {"input_size_list": [list(s) for s in shapes]} if shapes is not None else {}
            with tempfile.TemporaryDirectory(prefix="rknn-backend-") as folder:
                path = os.path.join(folder, "model.onnx")
                onnx.save(_bind(self.model, parameters) if parameters else self.model, path)
                with _step("load_onnx") as step:
                    step["result"] = rknn.load_onnx(model=path, **options)
            with _step("build") as step:
                step["result"] = rknn.build(do_quantization=False)
            with _step("init_runtime") as step:
                step["result"] = rknn.init_runtime()
            self._sessions[key] = rknn
        return self._sessions[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """The model's outputs for ``inputs`` (a list in graph-input order, a dict by name, or one array)."""
        if isinstance(inputs, dict):
            given = {name: np.asarray(inputs[name]) for name in self.input_names}
        else:
            arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            given = {name: np.asarray(a) for name, a in zip(self.input_names, arrays)}
        parameters = {name: given[name] for name in self.parameters}
        data = [given[name] for name in self.data_names]
        rknn = self._session(parameters, tuple(a.shape for a in data) if self.dynamic else None)
        graph = rknn._tk.model.graph
        return tuple(_infer(rknn, graph, data))


def _infer(rknn: Any, graph: Any, data: list[np.ndarray]) -> list[np.ndarray]:
    """``RKNN.inference`` with each input in the model's own layout and floating data in its own type."""
    tensors = [graph.tensor(name) for name in graph.inputs]
    floating = [str(t.dtype) for t in tensors if np.issubdtype(np.dtype(t.dtype), np.floating)]
    data_type = floating[0] if floating and floating[0] in DATA_TYPES else "float32"
    layouts = {t.layout for t in tensors} - {None}
    data_format = layouts.pop().lower() if len(layouts) == 1 else "nchw"
    # mixed layouts: NHWC inputs are given transposed, so inference's nchw -> NHWC turns them back
    data = [a.transpose(0, 3, 1, 2) if t.layout == "NHWC" and data_format == "nchw" else a
            for t, a in zip(tensors, data)]
    with _step("inference") as step:
        outputs = rknn.inference(inputs=data, data_type=data_type, data_format=data_format)
        step["result"] = 0 if outputs is not None else -1
    return outputs


class RknnBackend(Backend):
    """Runs ONNX models in the toolkit's simulator, through ``load_onnx`` -> ``build`` -> ``inference``."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> RknnBackendRep:
        if not cls.supports_device(device):
            raise RknnError(f"device '{device}' is not supported; the simulator runs on {', '.join(_DEVICES)}")
        return RknnBackendRep(model)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper() in _DEVICES


prepare = RknnBackend.prepare
run_model = RknnBackend.run_model
supports_device = RknnBackend.supports_device
