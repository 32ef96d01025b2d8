"""The conversion state shared by the op converters: tensor names, constants, node emission, layouts."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, QuantParams, Tensor
from rknn_tflite.reader import TfModel, TfOp, TfTensor

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
FUSED = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def dequantize(data: np.ndarray, q: QuantParams) -> np.ndarray:
    """Real values of integer storage: ``(q - zero_point) * scale``, per tensor or along ``q.axis``."""
    scale, zero = np.asarray(q.scale, np.float64), np.asarray(q.zero_point, np.float64)
    if q.axis is not None and data.ndim:
        shape = [1] * data.ndim
        shape[q.axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((data.astype(np.float64) - zero) * scale).astype(np.float32)


EIGHT_BIT = ("int8", "uint8")


def one_grid(*tensors: TfTensor, dtypes: tuple[str, ...] = EIGHT_BIT) -> bool:
    """Whether every tensor is quantized per tensor, all with the same storage type, one of ``dtypes``."""
    return (all(t.quant is not None and t.quant.axis is None for t in tensors)
            and len({t.dtype for t in tensors}) == 1 and tensors[0].dtype in dtypes)


def grid(t: TfTensor, prefix: str) -> dict:
    """``{prefix}_scale`` and ``{prefix}_zero`` of a per-tensor quantized tensor, as op attributes."""
    return {f"{prefix}_scale": float(t.quant.scale[0]), f"{prefix}_zero": int(t.quant.zero_point[0])}


def permute_quant(q: QuantParams | None, perm: list[int] | None) -> QuantParams | None:
    """The same parameters for the constant transposed by ``perm`` (the channel axis moves)."""
    if q is None or q.axis is None or perm is None:
        return q
    return QuantParams(q.qtype, q.scale, q.zero_point, axis=perm.index(q.axis), method=q.method)


class Ctx:
    """Maps TFLite tensors to IR tensors and appends IR nodes to ``graph``."""

    def __init__(self, model: TfModel):
        self.model = model
        self.graph = Graph(name=model.name)
        self.graph.metadata.update(source="tflite")
        self.names: dict[int, str] = {}
        self.op: TfOp | None = None
        self._nchw: dict[str, str] = {}
        self._count = 0
        used: set[str] = set()
        for t in model.tensors:
            name = t.name
            while name in used:
                name = f"{t.name}_{t.index}"
            used.add(name)
            self.names[t.index] = name

    # ------------------------------------------------------------------ tensors
    def tensor(self, index: int) -> TfTensor:
        return self.model.tensors[index]

    def inp(self, k: int) -> TfTensor | None:
        """The op's k-th input tensor (None when absent)."""
        ins = self.op.inputs
        return self.tensor(ins[k]) if k < len(ins) and ins[k] >= 0 else None

    def out(self, k: int = 0) -> TfTensor:
        return self.tensor(self.op.outputs[k])

    def value(self, k: int, real: bool = False) -> np.ndarray | None:
        """Constant data of input k: stored integers, or real values with ``real`` (dequantized)."""
        t = self.inp(k)
        if t is None or t.data is None:
            return None
        if real:
            return real_value(t)
        return t.data

    def require(self, k: int, what: str) -> np.ndarray:
        data = self.value(k)
        if data is None:
            raise RknnError(f"input {k} ({what}) must be a constant")
        return data

    def name(self, k: int) -> str:
        """IR name of input k (a constant is added to the graph on first use); '' when absent."""
        t = self.inp(k)
        if t is None:
            return ""
        return self.ref(t.index)

    def ref(self, index: int) -> str:
        name = self.names[index]
        t = self.tensor(index)
        if name not in self.graph.tensors and t.data is not None:
            data = real_value(t)
            self.graph.add_tensor(Tensor(name, tuple(data.shape), str(data.dtype), data, quant=t.quant))
        return name

    def const(self, base: str, data: np.ndarray, quant: QuantParams | None = None) -> str:
        name = self.graph.add_const(base, np.asarray(data))
        self.graph.tensors[name].quant = quant
        return name

    def weight(self, k: int, perm: list[int] | None) -> str:
        """Constant input k as a float32 IR constant, transposed by ``perm`` (quantization kept)."""
        t = self.inp(k)
        if t is None or t.data is None:
            raise RknnError(f"input {k} ({t.name if t else 'absent'}) must be a constant weight")
        data = real_value(t)
        if perm is not None:
            data = np.ascontiguousarray(data.transpose(perm))
        return self.const(f"{self.names[t.index]}_oihw" if perm else self.names[t.index], data,
                          permute_quant(t.quant, perm))

    def tmp(self, base: str) -> str:
        name = self.graph.unique_name(f"{base}")
        self.graph.add_tensor(Tensor(name))
        return name

    def output(self, k: int = 0) -> str:
        """IR name of output k, registered with its TFLite shape (float when quantized) and QuantParams."""
        t = self.out(k)
        name = self.names[t.index]
        if name not in self.graph.tensors:
            dtype = "float32" if t.quant is not None and t.dtype in ("int8", "uint8", "int16") else t.dtype
            self.graph.add_tensor(Tensor(name, t.shape, dtype, quant=t.quant))
        return name

    # ------------------------------------------------------------------ nodes
    def emit(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> str:
        """Append one node; returns its (first) output name (a fresh temporary when none is given)."""
        base = f"{self.op.code.lower().replace(':', '_')}_{self.op.index}" if self.op else op.lower()
        outputs = outputs or [self.tmp(f"{base}_{op.lower()}")]
        self._count += 1
        name = f"{base}_{op}_{self._count}"
        self.graph.nodes.append(Node(name, op, list(inputs), list(outputs), dict(attrs)))
        return outputs[0]

    def nchw(self, name: str) -> str:
        """An NCHW view of a 4-D NHWC tensor (one Transpose per tensor, shared by its readers)."""
        if name not in self._nchw:
            self._nchw[name] = self.emit("Transpose", [name], perm=TO_NCHW)
        return self._nchw[name]

    def activation(self, fused: int, src: str, dst: str) -> None:
        """Write ``src`` with TFLite fused activation ``fused`` applied to ``dst``.

        Like the TFLite kernels (``CalculateActivationRange``), only RELU, RELU6 and RELU_N1_TO_1 act.
        """
        kind = FUSED.get(int(fused), "?")
        if kind is None:
            self.emit("Identity", [src], [dst])
        elif kind == "RELU":
            self.emit("Relu", [src], [dst])
        elif kind in ("RELU6", "RELU_N1_TO_1"):
            lo, hi = (0.0, 6.0) if kind == "RELU6" else (-1.0, 1.0)
            self.emit("Clip", [src, self.const("clip_min", np.float32(lo)), self.const("clip_max", np.float32(hi))], [dst])
        else:  # TANH, SIGN_BIT: the TFLite kernels' activation range ignores them; so do we
            self.emit("Identity", [src], [dst])

    def finish(self, fused: int, emit_core) -> None:
        """Run ``emit_core(dst)`` into the output directly, or through a temporary when fused."""
        out = self.output(0)
        if FUSED.get(int(fused or 0)) not in ("RELU", "RELU6", "RELU_N1_TO_1"):
            emit_core(out)
        else:
            pre = self.tmp(f"{out}_preact")
            emit_core(pre)
            self.activation(fused, pre, out)


def real_value(t: TfTensor) -> np.ndarray:
    """A constant as the float graph uses it: quantized integers dequantized, float16 widened."""
    if t.quant is not None and t.dtype in ("int8", "uint8", "int16", "int32"):
        return dequantize(t.data, t.quant)
    if t.dtype == "float16":
        return t.data.astype(np.float32)
    return t.data
