"""The hybrid quantization config ``{model}.quantization.cfg``: render it, read an edited one back.

The layout is the vendor guide's (section 3.3.2)::

    %YAML 1.2
    ---
    # add layer name and corresponding quantized_dtype to customized_quantize_layers, e.g conv2_3: float32
    customized_quantize_layers: {}
    quantize_parameters:
        '@conv1_0:weight':
            dtype: asymmetric_affine
            method: layer
            max_value:
            -   0.61
            ...
            qtype: u8
        '@flat_3:weight':
            dtype: None

Keys are ``'@{layer_name}_{layer_id}:{port}'``: the layer id is the node's index (as ``eval_perf``
numbers layers), graph inputs are pseudo-layers numbered after the last node, and the port is
``weight`` (first constant input), ``bias`` (the int32 bias input), ``in{i}`` (further constant
inputs, by input position) or ``out{k}``. Every error while reading names the key and the line.
"""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import numpy as np
import yaml

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, QuantParams
from rknn_core.plugins import Registry
from rknn_core.quant.params import QTYPES
from rknn_core.quant.schemes import find_quantizer, weight_params
from rknn_core.shape_inference import op_for

HEADER = ("%YAML 1.2\n---\n# add layer name and corresponding quantized_dtype to customized_quantize_layers, "
          "e.g conv2_3: float32\n")
# customized_quantize_layers value -> config quantized_dtype (None: the layer runs in float); the name of
# an installed quantizer is accepted too
CUSTOM_TYPES: dict[str, str | None] = {
    "float32": None,
    "asymmetric_affine-u8": "asymmetric_quantized-u8",
    "asymmetric_affine": "asymmetric_quantized-u8",
    "dynamic_fixed_point-i8": "dynamic_fixed_point-8",
    "dynamic_fixed_point-i16": "dynamic_fixed_point-16",
}
KEY_RE = re.compile(r"^@(?P<layer>.+)_(?P<id>\d+):(?P<port>weight|bias|in\d+|out\d+)$", re.S)
FIELDS = ("dtype", "method", "max_value", "min_value", "zero_point", "scale", "qtype")
UNQUANTIZED = (None, "None", "none")


@attrs.frozen
class Entry:
    """One tensor of the cfg: its key, the tensor it describes, the layer id and the port."""

    key: str
    tensor: str
    layer: int
    port: str
    position: int = -1  # the node input a constant is (-1 for outputs)


@attrs.define
class HybridEdits:
    """What an edited cfg asks for, ready for ``quantize_graph``."""

    float_nodes: set[str] = attrs.field(factory=set)
    quantized_nodes: set[str] = attrs.field(factory=set)
    given: dict[str, QuantParams] = attrs.field(factory=dict)
    # tensors whose parameters the arithmetic derives (int32 biases, outputs of same-scale ops):
    # tensor -> (key, line, written params), compared with the result after quantization
    derived: dict[str, tuple[str, int, QuantParams]] = attrs.field(factory=dict)


def entries(graph: Graph, registry: Registry) -> list[Entry]:
    """The cfg entries of ``graph`` in file order: graph inputs, then every node's constants and outputs."""
    count = len(graph.nodes)
    result = [Entry(f"@{name}_{count + j}:out0", name, count + j, "out0") for j, name in enumerate(graph.inputs)]
    for i, node in enumerate(graph.nodes):
        bias_input = op_for(node, registry).quant_bias_input
        weight_seen = False
        for position, name in enumerate(node.inputs):
            if not name or not graph.tensors[name].is_const:
                continue
            if position == bias_input:
                port = "bias"
            elif not weight_seen:
                port, weight_seen = "weight", True
            else:
                port = f"in{position}"
            result.append(Entry(f"@{node.name}_{i}:{port}", name, i, port, position))
        result.extend(Entry(f"@{node.name}_{i}:out{k}", name, i, f"out{k}") for k, name in enumerate(node.outputs) if name)
    return result


# writing ----------------------------------------------------------------------------------------
def yaml_number(value: float | int) -> str:
    """A number YAML 1.1 and 1.2 parsers both read back exactly (``1e-05`` -> ``1.0e-05``)."""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent


def _quote(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"


def _render_params(q: QuantParams | None) -> list[str]:
    pad = " " * 8
    if q is None:
        return [f"{pad}dtype: None"]
    lines = [f"{pad}dtype: {q.scheme}", f"{pad}method: {q.method}"]
    lists = (("max_value", None if q.max_value is None else [q.max_value]),
             ("min_value", None if q.min_value is None else [q.min_value]),
             ("zero_point", list(q.zero_point)), ("scale", list(q.scale)))
    for field, values in lists:
        lines.append(f"{pad}{field}:")
        lines.extend(f"{pad}-   {yaml_number(v)}" for v in values or ())
    lines.append(f"{pad}qtype: {q.qtype}")
    return lines


def render_cfg(quantized: Graph, registry: Registry) -> str:
    """The cfg text of a quantized graph: every entry with its parameters (``dtype: None`` if none)."""
    lines = [HEADER.rstrip("\n"), "customized_quantize_layers: {}", "quantize_parameters:"]
    for entry in entries(quantized, registry):
        lines.append(f"    {_quote(entry.key)}:")
        lines.extend(_render_params(quantized.tensors[entry.tensor].quant))
    return "\n".join(lines) + "\n"


# reading ----------------------------------------------------------------------------------------
class _Lines:
    """Line numbers (1-based) of mapping keys, from ``yaml.compose``; refuses duplicate keys."""

    def __init__(self, root: yaml.Node, path: str):
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        self._walk(root, ())

    def _walk(self, node: yaml.Node, trail: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode) or len(trail) > 2:
            return
        for key_node, value_node in node.value:
            key = (*trail, str(key_node.value))
            if key in self.lines:
                raise RknnError(f"{self.path}: line {key_node.start_mark.line + 1}: key '{key[-1]}' appears twice "
                                f"(first on line {self.lines[key]})")
            self.lines[key] = key_node.start_mark.line + 1
            self._walk(value_node, key)

    def line(self, *trail: str) -> int:
        for n in range(len(trail), 0, -1):
            if trail[:n] in self.lines:
                return self.lines[trail[:n]]
        return 1

    def fail(self, trail: tuple[str, ...], problem: str) -> RknnError:
        return RknnError(f"{self.path}: line {self.line(*trail)}: '{trail[-1]}': {problem}")


def _load(text: str, path: str) -> tuple[dict, _Lines]:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += f" ({context} started on line {context_mark.line + 1})"
        raise RknnError(f"{path}: {where}YAML syntax error: {problem}") from None
    if not isinstance(data, dict) or root is None:
        raise RknnError(f"{path}: line 1: not a quantization config (expected the keys customized_quantize_layers "
                        f"and quantize_parameters)")
    lines = _Lines(root, path)
    for key in data:
        if key not in ("customized_quantize_layers", "quantize_parameters"):
            raise lines.fail((str(key),), "unknown key; a quantization config has customized_quantize_layers "
                                          "and quantize_parameters")
    if "quantize_parameters" not in data:
        raise RknnError(f"{path}: line 1: 'quantize_parameters' is missing")
    return data, lines


def _layer_index(graph: Graph) -> dict[str, set[int]]:
    """Layer name or ``{name}_{id}`` -> node indices it may refer to."""
    index: dict[str, set[int]] = {}
    for i, node in enumerate(graph.nodes):
        index.setdefault(node.name, set()).add(i)
        index.setdefault(f"{node.name}_{i}", set()).add(i)
    return index


def _customized(data: dict, lines: _Lines, graph: Graph, registry: Registry, quantized_dtype: str,
                edits: HybridEdits) -> None:
    custom = data.get("customized_quantize_layers") or {}
    trail = ("customized_quantize_layers",)
    if not isinstance(custom, dict):
        raise lines.fail(trail, "must be a mapping of layer name to type, e.g. {conv2_3: float32}")
    index = _layer_index(graph)
    for name, value in custom.items():
        where = (*trail, str(name))
        found = index.get(str(name), set())
        if not found:
            raise lines.fail(where, "no layer of the model has this name")
        if len(found) > 1:
            raise lines.fail(where, f"ambiguous: layers {sorted(found)} match; write it as name_id")
        node = graph.nodes[found.pop()]
        known = {**CUSTOM_TYPES, **{name: name for name in registry.table("quantizers")}}
        if not isinstance(value, str) or value not in known:
            raise lines.fail(where, f"type {value!r} is unknown; use one of {', '.join(known)}")
        wanted = known[value]
        if wanted is None:
            edits.float_nodes.add(node.name)
            continue
        if wanted != quantized_dtype:
            raise lines.fail(where, f"type {value} does not match the model's quantized_dtype {quantized_dtype}; "
                                    f"quantized layers must all use the same scheme")
        if not op_for(node, registry).quantizable:
            raise lines.fail(where, f"op {node.op} has no quantized form; it can only run in float32")
        edits.quantized_nodes.add(node.name)


def _numbers(value: Any, kind: type, trail: tuple[str, ...], lines: _Lines, allow_null: bool = False) -> list:
    if value is None and allow_null:
        return []
    values = value if isinstance(value, list) else [value]
    result = []
    for v in values:
        try:
            if isinstance(v, bool) or v is None:
                raise ValueError
            number = float(v)
            if not math.isfinite(number) or (kind is int and number != int(number)):
                raise ValueError
        except (TypeError, ValueError):
            what = "an integer" if kind is int else "a finite number"
            raise lines.fail(trail, f"value {v!r} is not {what}") from None
        result.append(int(number) if kind is int else number)
    if not result and not allow_null:
        raise lines.fail(trail, "needs at least one value")
    return result


def _params(fields: Any, entry: Entry, lines: _Lines, expected: QuantParams, axis: int) -> QuantParams | None:
    """The QuantParams written for one entry (None for ``dtype: None``), checked against the scheme and
    storage type the model's quantizer gives such a tensor (``expected``); per channel along ``axis``."""
    scheme, qtype = expected.scheme, expected.qtype
    trail = ("quantize_parameters", entry.key)
    if not isinstance(fields, dict):
        raise lines.fail(trail, "must be a mapping of dtype, method, max_value, min_value, zero_point, scale, qtype")
    for name in fields:
        if name not in FIELDS:
            raise lines.fail((*trail, str(name)), f"unknown field; the fields are {', '.join(FIELDS)}")
    if "dtype" not in fields:
        raise lines.fail(trail, "field 'dtype' is missing (write 'dtype: None' for a tensor left unquantized)")
    if fields["dtype"] in UNQUANTIZED:
        return None
    for name in ("qtype", "scale", "zero_point"):
        if name not in fields:
            raise lines.fail(trail, f"field '{name}' is missing")
    if fields["dtype"] != scheme:
        raise lines.fail((*trail, "dtype"), f"dtype {fields['dtype']!r} does not match the model's scheme {scheme}")
    want = "i32" if entry.port == "bias" else qtype
    if fields["qtype"] != want:
        raise lines.fail((*trail, "qtype"), f"qtype {fields['qtype']!r} is wrong here; this tensor is {want} "
                                            f"(known qtypes: {', '.join(QTYPES)})")
    method = fields.get("method", "layer")
    if method not in ("layer", "channel"):
        raise lines.fail((*trail, "method"), f"method {method!r} is unknown; use layer")
    scale = _numbers(fields["scale"], float, (*trail, "scale"), lines)
    if any(s <= 0 for s in scale):
        raise lines.fail((*trail, "scale"), "scales must be positive")
    zero = _numbers(fields["zero_point"], int, (*trail, "zero_point"), lines)
    lo, hi, _ = QTYPES[want]
    if any(not lo <= z <= hi for z in zero):
        raise lines.fail((*trail, "zero_point"), f"zero points must lie in [{lo}, {hi}] for {want}")
    if len(zero) not in (1, len(scale)):
        raise lines.fail((*trail, "zero_point"), f"has {len(zero)} values but scale has {len(scale)}")
    if scheme == "dynamic_fixed_point":
        if any(z != 0 for z in zero):
            raise lines.fail((*trail, "zero_point"), "dynamic fixed point has zero point 0")
        if entry.port != "bias" and any(math.frexp(s)[0] != 0.5 for s in scale):
            raise lines.fail((*trail, "scale"), "dynamic fixed point scales are powers of two (2**-fl)")
    bounds = [_numbers(fields.get(n), float, (*trail, n), lines, allow_null=True) for n in ("min_value", "max_value")]
    if len(zero) == 1 and len(scale) > 1:
        zero = zero * len(scale)
    return QuantParams(want, tuple(scale), tuple(zero), axis=axis if len(scale) > 1 else None, scheme=scheme,
                       min_value=bounds[0][0] if bounds[0] else None, max_value=bounds[1][0] if bounds[1] else None,
                       method=method)


def parse_cfg(text: str, path: str, graph: Graph, registry: Registry, quantized_dtype: str) -> HybridEdits:
    """Read an edited cfg for the float ``graph``; any problem is an error naming the key and line."""
    data, lines = _load(text, path)
    edits = HybridEdits()
    _customized(data, lines, graph, registry, quantized_dtype, edits)
    params = data.get("quantize_parameters") or {}
    if not isinstance(params, dict):
        raise lines.fail(("quantize_parameters",), "must be a mapping of '@layer_id:port' keys to parameters")
    known = {e.key: e for e in entries(graph, registry)}
    quantizer = find_quantizer(registry, quantized_dtype)
    activation = quantizer.quantize(-1.0, 1.0)
    weight = weight_params(quantizer, np.array([-1.0, 1.0]), None)
    float_kind = {name for name, t in graph.tensors.items() if t.dtype.startswith("float")}
    for key, fields in params.items():
        trail = ("quantize_parameters", str(key))
        entry = known.get(str(key))
        if entry is None:
            raise lines.fail(trail, _unknown_key(str(key), graph))
        node = graph.nodes[entry.layer] if entry.layer < len(graph.nodes) else None
        q = _params(fields, entry, lines, weight if entry.port == "weight" else activation,
                    _channel_axis(graph, node, entry, registry))
        if q is None:
            continue
        if entry.tensor not in float_kind:
            raise lines.fail(trail, f"tensor '{entry.tensor}' holds {graph.tensors[entry.tensor].dtype} values and "
                                    f"is not quantized; its dtype must stay None")
        is_const = not entry.port.startswith("out")
        if node is not None and node.name in edits.float_nodes:
            if is_const:
                continue  # a float32 layer keeps its constants in float
        elif node is not None and is_const and not op_for(node, registry).quantizable:
            raise lines.fail(trail, f"op {node.op} has no quantized form, so its constants stay float; "
                                    f"its dtype must stay None")
        tied = (node is not None and node.name not in edits.float_nodes and not is_const
                and op_for(node, registry).quant_same_scale)
        if entry.port == "bias" or tied:
            edits.derived[entry.tensor] = (entry.key, lines.line(*trail), q)
            continue
        _give(edits, entry, q, lines.line(*trail), path)
    return edits


def _channel_axis(graph: Graph, node, entry: Entry, registry: Registry) -> int:
    """The axis of per-channel parameters written for an entry: the op's output-channel axis of that
    weight input, else 0 (biases)."""
    if node is None or entry.position < 0:
        return 0
    axis = op_for(node, registry).weight_axes(node.attrs).get(entry.position, 0)
    return axis % max(len(graph.tensors[entry.tensor].shape or ()), 1)


def _give(edits: HybridEdits, entry: Entry, q: QuantParams, line: int, path: str) -> None:
    """Fix ``q`` for the tensor; a constant listed under two layers must get the same parameters."""
    before = edits.given.get(entry.tensor)
    if before is not None and (before.scale != q.scale or before.zero_point != q.zero_point):
        raise RknnError(f"{path}: line {line}: '{entry.key}': tensor '{entry.tensor}' is also listed under another "
                        f"key with different parameters; edit both the same way")
    edits.given[entry.tensor] = q


def _unknown_key(key: str, graph: Graph) -> str:
    match = KEY_RE.match(key)
    if match is None:
        return "malformed key; keys are '@{layer_name}_{layer_id}:{weight|bias|out0|...}'"
    layer, number = match["layer"], int(match["id"])
    names = [n.name for n in graph.nodes] + list(graph.inputs)
    if number >= len(names):
        return f"no layer has id {number} (the model has layers 0..{len(names) - 1})"
    if names[number] != layer:
        return f"layer {number} is '{names[number]}', not '{layer}'"
    return f"layer '{layer}' has no tensor '{match['port']}'"


def check_derived(graph: Graph, edits: HybridEdits, path: str) -> list[str]:
    """Warnings for derived parameters (int32 biases, same-scale outputs) written differently from the result."""
    warnings = []
    for name, (key, line, written) in edits.derived.items():
        actual = graph.tensors[name].quant
        if actual is None:
            continue
        same = (len(actual.scale) == len(written.scale) and list(actual.zero_point) == list(written.zero_point)
                and all(math.isclose(a, w, rel_tol=1e-9) for a, w in zip(actual.scale, written.scale)))
        if not same:
            why = ("an int32 bias has scale input_scale x weight_scale and zero point 0"
                   if key.endswith(":bias") else "this op's outputs share its input's parameters")
            warnings.append(f"{path}: line {line}: '{key}': {why}; using scale {list(actual.scale)} zero_point "
                            f"{list(actual.zero_point)} instead of the written values")
    return warnings
