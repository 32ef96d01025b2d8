"""A readable text dump of a built model (what ``rknn inspect`` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rknn_core.ir import Graph, Tensor
from rknn_core.model import RknnModel

ARRAY_INLINE = 8  # arrays with at most this many elements are printed in full


def _shape(shape: Any) -> str:
    return "?" if shape is None else "[" + ",".join(str(int(d)) for d in shape) + "]"


def _number(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _summarize_array(arr: np.ndarray) -> str:
    arr = np.asarray(arr)
    if arr.size <= ARRAY_INLINE and arr.ndim <= 1:
        return "[" + ",".join(_number(v) for v in arr.reshape(-1).tolist()) + "]"
    text = f"<{arr.dtype}{_shape(arr.shape)}"
    if arr.size and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        text += f" min={_number(arr.min())} max={_number(arr.max())}"
    return text + ">"


def format_attr(value: Any) -> str:
    """One attribute value, compact: short lists in full, arrays and long lists summarized."""
    if isinstance(value, np.ndarray):
        return _summarize_array(value)
    if isinstance(value, (list, tuple)):
        if len(value) > ARRAY_INLINE:
            return f"<list of {len(value)}>"
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_attr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    return _number(value)


def _tensor_ref(graph: Graph, name: str) -> str:
    if not name:
        return "-"
    tensor = graph.tensors.get(name)
    if tensor is None:
        return f"{name}?"
    text = f"{name}{_shape(tensor.shape)}"
    if tensor.is_const:
        text += "(const)"
    return text


def _const_line(tensor: Tensor) -> str:
    data = np.asarray(tensor.data)
    text = f"  {tensor.name}: {data.dtype}{_shape(data.shape)} {data.nbytes} bytes"
    if data.size and (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        text += f" min={_number(data.min())} max={_number(data.max())}"
    if tensor.quant is not None:
        q = tensor.quant
        scale = _number(q.scale[0]) if len(q.scale) == 1 else f"{len(q.scale)} per-channel (axis {q.axis})"
        text += f" quant={q.qtype} scale={scale} zp={q.zero_point[0] if len(q.zero_point) == 1 else '...'}"
    return text


def _node_macs(graph: Graph, node: Any, registry: Any) -> int | None:
    """MACs of one node from its OpDef's cost (one per output element when it has none)."""
    try:
        infos = [graph.tensors[n].info() if n else None for n in node.inputs]
        outs = [graph.tensors[n].info() for n in node.outputs if n]
        opdef = registry.op(node.op) if registry is not None else None
        if opdef is not None and opdef.cost is not None:
            return int(opdef.cost(infos, outs, node.attrs).macs)
        return sum(o.size for o in outs)
    except Exception:  # a cost model must never break a dump
        return None


def _preprocess_lines(model: RknnModel) -> list[str]:
    cfg = model.extra.get("config", {}) if isinstance(model.extra, dict) else {}
    lines = []
    if cfg.get("channel_mean_value"):
        lines.append(f"channel_mean_value: '{cfg['channel_mean_value']}'")
    if cfg.get("reorder_channel") and cfg["reorder_channel"] != "0 1 2":
        lines.append(f"reorder_channel: '{cfg['reorder_channel']}'")
    for name, pre in model.preprocessed.items():
        lines.append(f"input '{name}' -> preprocessed tensor '{pre}'")
    return lines or ["none"]


def _suppliers(model: RknnModel) -> str:
    """The distributions (with versions) a model's provenance names, each once."""
    names = {f"{e['distribution']} {e['version']}" if e.get("distribution") else f"plugin '{e.get('plugin')}'"
             for entries in model.provenance.values() for e in entries.values()}
    return ", ".join(sorted(names))


def dump_model(model: RknnModel, registry: Any = None, format_version: int | None = None) -> str:
    """The model as text: header, inputs/outputs, one line per node, constants and totals.

    ``format_version`` is the version of the file the model was read from (default: the current one).
    """
    if registry is None:
        from rknn_core.plugins import default_registry

        registry = default_registry()
    from rknn_core.fileformat import FORMAT_VERSION
    from rknn_core.platforms import platform_families

    g = model.graph
    known = platform_families(registry)
    families = sorted({known.get(p, "?") for p in model.target_platform})
    cfg = model.extra.get("config", {}) if isinstance(model.extra, dict) else {}
    lines = [
        f"RKNN model '{g.name}'",
        f"format version: {format_version if format_version is not None else FORMAT_VERSION}",
        f"target platforms: {', '.join(model.target_platform)} (family {', '.join(families)})",
        f"pre_compile: {model.pre_compile}",
        f"rknn_batch_size: {model.rknn_batch_size}",
        f"quantization: {model.quantized_dtype or 'none (float)'}",
    ]
    if "optimization_level" in cfg:
        lines.append(f"optimization_level: {cfg['optimization_level']}")
    if model.provenance:
        lines.append(f"plugins: {_suppliers(model)}")
    lines.append("preprocessing: " + "; ".join(_preprocess_lines(model)))
    if model.extra.get("sync_uids"):
        lines.append(f"sync after layers: {model.extra['sync_uids']}")
    for title, names in (("inputs", g.inputs), ("outputs", g.outputs)):
        lines.append(f"{title} ({len(names)}):")
        for name in names:
            t = g.tensors.get(name)
            if t is None:
                lines.append(f"  {name}: ?")
                continue
            layout = f" {t.layout}" if t.layout else ""
            fed = ""
            if model.rknn_batch_size > 1 and t.shape:
                fed = f" (with rknn_batch_size: {_shape((t.shape[0] * model.rknn_batch_size, *t.shape[1:]))})"
            lines.append(f"  {name}: {t.dtype}{_shape(t.shape)}{layout}{fed}")
    lines.append(f"nodes ({len(g.nodes)}):")
    total_macs, macs_known = 0, True
    width = len(str(max(len(g.nodes) - 1, 0)))
    for i, node in enumerate(g.nodes):
        ins = ", ".join(_tensor_ref(g, n) for n in node.inputs)
        outs = ", ".join(_tensor_ref(g, n) for n in node.outputs)
        attrs = " ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
        macs = _node_macs(g, node, registry)
        if macs is None:
            macs_known = False
        else:
            total_macs += macs
        line = f"  {i:>{width}} {node.op} '{node.name}' ({ins}) -> ({outs})"
        if attrs:
            line += f" {{{attrs}}}"
        if macs:
            line += f" macs={macs}"
        lines.append(line)
    consts = sorted(g.iter_const(), key=lambda t: t.name)
    params = sum(int(np.asarray(t.data).size) for t in consts)
    nbytes = sum(int(np.asarray(t.data).nbytes) for t in consts)
    lines.append(f"constants ({len(consts)}):")
    lines.extend(_const_line(t) for t in consts)
    batch = max(int(model.rknn_batch_size), 1)
    macs_text = f"{total_macs * batch}" + ("" if macs_known else " (some ops without a cost estimate)")
    lines += [
        "totals:",
        f"  nodes: {len(g.nodes)}",
        f"  parameters: {params} ({nbytes} bytes, {nbytes / (1024 * 1024):.2f} MiB)",
        f"  MACs per inference: {macs_text}" + (f" (batch {batch})" if batch > 1 else ""),
    ]
    return "\n".join(lines) + "\n"

