"""Read a .tflite file into the toolkit's Graph (NHWC inputs/outputs, NCHW core ops inside)."""

from __future__ import annotations

import logging

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_tflite import __version__
from rknn_tflite.context import Ctx
from rknn_tflite.reader import read_model

log = logging.getLogger("rknn")
FRONTEND = "tflite"  # the frontend name converters register under
_INT = ("int8", "uint8", "int16")


def supported_ops(registry: Registry | None = None) -> list[str]:
    """The TFLite op names (builtin names, ``custom:<custom_code>``) the installed converters cover."""
    return sorted((registry or default_registry()).converters(FRONTEND))


def _qconsts(ctx: Ctx, q, base: str) -> tuple[str, str]:
    dtype = {"u8": np.uint8, "i8": np.int8, "i16": np.int16}[q.qtype]
    return (ctx.const(f"{base}_scale", np.float32(q.scale[0])),
            ctx.const(f"{base}_zero_point", np.array(q.zero_point[0], dtype=dtype)))


def _inputs(ctx: Ctx) -> None:
    """Graph inputs keep the model's NHWC shape and dtype; integer ones are dequantized once."""
    for index in ctx.model.inputs:
        t = ctx.tensor(index)
        if t.data is not None:
            continue
        name = ctx.names[index]
        layout = "NHWC" if len(t.shape) == 4 else None
        ctx.graph.add_tensor(Tensor(name, t.shape, t.dtype, layout=layout, quant=t.quant))
        ctx.graph.inputs.append(name)
        if t.quant is not None and t.dtype in _INT:
            real = ctx.graph.unique_name(f"{name}_real")
            ctx.graph.add_tensor(Tensor(real, t.shape, "float32", quant=t.quant))
            ctx.graph.nodes.append(_node(ctx, "DequantizeLinear", [name, *_qconsts(ctx, t.quant, name)], real))
            ctx.names[index] = real


def _node(ctx: Ctx, op: str, inputs: list[str], output: str):
    from rknn_core.ir import Node

    return Node(f"{output}_{op}", op, inputs, [output])


def _outputs(ctx: Ctx) -> list[tuple[str, str, object]]:
    """Integer outputs: ops write a float tensor that a final QuantizeLinear stores in the model's type."""
    pending = []
    for index in ctx.model.outputs:
        t = ctx.tensor(index)
        name = ctx.names[index]
        if t.quant is not None and t.dtype in _INT:
            real = f"{name}_real"
            ctx.names[index] = real
            pending.append((real, name, t))
        ctx.graph.outputs.append(name)
    return pending


def _convert(ctx: Ctx, path: str, registry: Registry) -> None:
    converters = registry.converters(FRONTEND)
    for op in ctx.model.ops:
        ctx.op = op
        out_name = ctx.model.tensors[op.outputs[0]].name if op.outputs else "?"
        where = f"operator {op.index} ({op.code}, output '{out_name}') of '{path}'"
        converter = converters.get(op.code)
        if converter is None:
            raise RknnError(f"unsupported TFLite op {op.code} at {where}: no installed plugin converts it (a plugin "
                            f"adds it with an rknn_converters hook returning Converter('{FRONTEND}', '{op.code}', "
                            f"...)); rknn-tflite {__version__} supports {', '.join(sorted(converters))}")
        try:
            grids = _open_grids(ctx, op)
            converter(ctx, op)
            _close_grids(ctx, grids)
        except RknnError as exc:
            raise RknnError(f"{where}: {exc} (rknn-tflite {__version__})") from None
        except Exception as exc:
            raise RknnError(f"{where}: conversion failed: {type(exc).__name__}: {exc} "
                            f"(rknn-tflite {__version__})") from exc
    ctx.op = None


def _open_grids(ctx: Ctx, op) -> list[tuple[int, str, str]]:
    """Integer outputs of an op: the op writes a raw float tensor, snapped onto the output's grid after."""
    if op.code in ("QUANTIZE", "DEQUANTIZE", "DENSIFY"):
        return []
    grids = []
    for index in op.outputs:
        t = ctx.tensor(index)
        if t.quant is not None and t.quant.axis is None and t.dtype in _INT and t.data is None:
            final = ctx.names[index]
            raw = ctx.graph.unique_name(f"{final}_raw")
            ctx.names[index] = raw
            grids.append((index, raw, final))
    return grids


def _close_grids(ctx: Ctx, grids: list[tuple[int, str, str]]) -> None:
    """QuantizeLinear + DequantizeLinear: values round and saturate as the model's integer tensors do."""
    for index, raw, final in grids:
        t = ctx.tensor(index)
        scale, zero = _qconsts(ctx, t.quant, final)
        stored = ctx.emit("QuantizeLinear", [raw, scale, zero])
        ctx.graph.add_tensor(Tensor(final, t.shape, "float32", quant=t.quant))
        ctx.emit("DequantizeLinear", [stored, scale, zero], [final])
        ctx.names[index] = final


def _check_shapes(ctx: Ctx, path: str, registry: Registry) -> None:
    """Every tensor the model declares must come out of shape inference with the model's shape."""
    from rknn_core.shape_inference import infer_shapes

    infer_shapes(ctx.graph, registry)
    for t in ctx.model.tensors:
        ir = ctx.graph.tensors.get(ctx.names[t.index])
        if ir is not None and ir.shape is not None and t.shape and tuple(ir.shape) != tuple(t.shape):
            raise RknnError(f"'{path}': tensor '{t.name}' comes out with shape {tuple(ir.shape)}, the model "
                            f"declares {t.shape} (rknn-tflite {__version__})")


def load_tflite(model: str, registry: Registry | None = None) -> Graph:
    """Import a .tflite model with the registry's converters (the installed plugins' by default); raises
    RknnError naming the file, operator and op on any problem."""
    registry = registry or default_registry()
    tf = read_model(model)
    ctx = Ctx(tf)
    ctx.graph.metadata.update(source_file=str(model), frontend_version=__version__)
    _inputs(ctx)
    pending = _outputs(ctx)
    _convert(ctx, str(model), registry)
    for real, name, t in pending:
        ctx.graph.add_tensor(Tensor(name, t.shape, t.dtype, quant=t.quant))
        if real not in ctx.graph.tensors:
            raise RknnError(f"'{model}': output '{name}' is produced by no operator")
        ctx.graph.nodes.append(_node(ctx, "QuantizeLinear", [real, *_qconsts(ctx, t.quant, name)], name))
    for name in ctx.graph.outputs:
        if name not in ctx.graph.tensors:
            raise RknnError(f"'{model}': output '{name}' is produced by no operator")
    ctx.graph.toposort()
    _check_shapes(ctx, str(model), registry)
    log.debug("load_tflite: %d TFLite operators -> %d nodes", len(tf.ops), len(ctx.graph.nodes))
    return ctx.graph
