"""Run a quantized graph with the integer arithmetic of the chip.

A value is held as storage integers when its tensor has QuantParams and the value has an integer
dtype; otherwise it is a real (float) value. A quantized node gets storage integers for every
quantized input (real values are quantized on the way in, as a hybrid boundary does) and runs its
``quant_kernel``; a float node (hybrid ``float32`` layer or op with no quantized form) gets real
values and its outputs are quantized only where its consumers are quantized nodes.

The input normalization (the Gather/Sub/Div nodes of ``channel_mean_value`` or any per-channel
constant Add/Sub/Mul/Div chain right after a quantized model input) is a function of each input code
and channel alone, so the plan runs it as one lookup: the chain's own integer kernels applied once to
every code give a table per channel, and a run quantizes the input and indexes that table. The
results are the chain's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rknn_core.ir import Graph, Node, QuantParams
from rknn_core.ops._quant import channels_last_planes, code_lookup, rows_lookup, tables_by_byte
from rknn_core.plugins import Registry
from rknn_core.preprocess import channel_axis
from rknn_core.quant.params import QTYPES, dequantize, stored_codes
from rknn_core.quant.quantize_graph import FLOAT_NODES
from rknn_core.runtime.executor import Executor, computed_inputs

CHAIN_OPS = ("Gather", "Add", "Sub", "Mul", "Div")


def is_stored_quantized(value: np.ndarray | None, q) -> bool:
    return q is not None and value is not None and np.asarray(value).dtype.kind in "iu"


def _converter(q, quantized: bool, constant: np.ndarray | None) -> Callable | None:
    """What an input with parameters ``q`` goes through on its way into a node: real values quantized
    (``quantized`` node) or storage dequantized (float node); None when nothing. A ``constant`` input
    is converted once, here."""
    if q is None:
        return None
    if quantized:
        def convert(a):
            return a if a is None or (isinstance(a, np.ndarray) and a.dtype.kind in "iu") else stored_codes(a, q)
    else:
        to_real = dequantizer(q)

        def convert(a):
            return to_real(a) if is_stored_quantized(a, q) else a
    if constant is None:
        return convert
    done = convert(constant)
    return lambda a: done if a is constant else convert(a)


def dequantizer(q: QuantParams) -> Callable[[np.ndarray], np.ndarray]:
    """``dequantize(v, q)`` for storage ``v``; 8-bit codes of per-tensor parameters as one lookup in a table
    of every code's value (the same float32 numbers in a fraction of the time)."""
    if q.qtype not in ("u8", "i8") or len(q.scale) != 1 or len(q.zero_point) != 1:
        return lambda v: dequantize(v, q)
    lo, hi, dtype = QTYPES[q.qtype]
    lookup = code_lookup(dequantize(np.arange(lo, hi + 1).astype(dtype), q), q.qtype)
    return lambda v: lookup(v) if np.asarray(v).dtype == dtype and np.ndim(v) else dequantize(v, q)


def _converted(args: list, convert: list, fixed: list, fresh: bool) -> list:
    """``args`` (a copy when ``fresh``) with the values at positions ``convert`` (position, converter)
    through their converters and ``fixed`` (position, value) put in place."""
    if fresh and convert:
        args = list(args)
    for k, f in convert:
        args[k] = f(args[k])
    for k, value in fixed:
        args[k] = value
    return args


class QuantExecutor(Executor):
    """The Executor with integer kernels for quantized nodes; real values in and out."""

    CHAINS = False  # a node's call here converts its inputs (quantizes, dequantizes) as the node needs

    def __init__(self, graph: Graph, registry: Registry):
        super().__init__(graph, registry)
        float_nodes = set(graph.metadata.get(FLOAT_NODES, ()))
        self.quantized = [node.name not in float_nodes and opdef.quantizable
                          for node, opdef in zip(graph.nodes, self.opdefs)]
        self._dequantizers: dict[str, tuple[QuantParams, Callable]] = {}  # per tensor, while its parameters stay

    def run(self, feeds: dict[str, np.ndarray], times: list | None = None, keep=()) -> dict[str, np.ndarray]:
        """Real-valued feeds in; outputs (and kept tensors) come back as real float32 values."""
        values = super().run(feeds, times, keep)
        return {name: self.real(name, value) for name, value in values.items()}

    def real(self, name: str, value: np.ndarray) -> np.ndarray:
        q = self.graph.tensors[name].quant if name in self.graph.tensors else None
        if not is_stored_quantized(value, q):
            return value
        known = self._dequantizers.get(name)
        if known is None or known[0] is not q:
            known = self._dequantizers[name] = (q, dequantizer(q))
        return known[1](value)

    def prepare(self, i: int, node: Node, fed: frozenset | None = None) -> Callable[[list], list]:
        """Node ``i``'s call with its inputs' and outputs' parameters looked up now (bias correction adds
        inputs and parameters between runs, so ``compute`` prepares afresh) and its constant inputs
        quantized (or dequantized) once; in a plan (whose template holds the graph's constants) they are
        put in place as converted, and only the running values go through converters."""
        tensors, kernel = self.graph.tensors, self.kernels[i]
        in_q = [tensors[n].quant if n else None for n in node.inputs]
        quantized = self.quantized[i]
        constants = self.constants(node, fed)
        convert = [(k, _converter(q, quantized, data)) for k, (q, data) in enumerate(zip(in_q, constants))]
        convert = [(k, f) for k, f in convert if f is not None]
        if fed is None:
            fixed, fresh = [], True  # ``compute``: the caller's list is left as it is
        else:
            fixed = [(k, f(constants[k])) for k, f in convert if constants[k] is not None]
            convert, fresh = [(k, f) for k, f in convert if constants[k] is None], False
        opdef = self.opdefs[i]
        float_kernel = not quantized or opdef.quant_kernel is None  # a float node, or a same-scale op whose
        out_q = [tensors[n].quant if n else None for n in node.outputs]  # float kernel moves storage
        prepare = opdef.prepare if float_kernel else opdef.quant_prepare
        if fed is not None and prepare is not None:
            given = list(constants)
            for k, value in fixed:
                given[k] = value
            computed = computed_inputs(node, constants)
            bound = prepare(node.attrs, given, computed) if float_kernel else \
                prepare(in_q, out_q, node.attrs, given, computed)
            if bound is not None:
                return bound if not convert else lambda args: bound(_converted(args, convert, (), False))
        if float_kernel:
            return lambda args: kernel(_converted(args, convert, fixed, fresh), node.attrs)
        quant_kernel = opdef.quant_kernel
        return lambda args: quant_kernel(_converted(args, convert, fixed, fresh), in_q, out_q, node.attrs)

    def calls(self, indices: list[int], fed: frozenset, pinned: frozenset):
        """The needed nodes' calls, with each input's normalization chain as one lookup call."""
        calls = super().calls(indices, fed, pinned)
        needed = set(indices)
        for x in self.graph.inputs:
            chain = self._input_chain(x, needed, pinned) if x in fed else None
            if chain is None:
                continue
            first = next(k for k, c in enumerate(calls) if c[0] is self.graph.nodes[chain[0]])
            last = self.graph.nodes[chain[-1]]
            calls[first:first + len(chain)] = [(last, self._lookup(x, chain), [x], list(last.outputs))]
        return calls

    def _input_chain(self, x: str, needed: set[int], pinned: frozenset) -> list[int] | None:
        """Indices of the quantized per-channel elementwise nodes that follow input ``x`` one after the
        other (each read by the next alone), or None."""
        graph, tensor = self.graph, self.graph.tensors[x]
        q, axis = tensor.quant, channel_axis(tensor)
        if q is None or len(q.scale) != 1 or axis is None or q.qtype not in QTYPES:
            return None
        index = {id(node): i for i, node in enumerate(graph.nodes)}
        consumers = graph.consumers()
        chain, current = [], x
        while True:
            readers = consumers.get(current, [])
            if len(readers) != 1 or (chain and current in pinned):
                break
            i = index[id(readers[0])]
            if i not in needed or not self._per_channel_step(i, current, axis):
                break
            chain.append(i)
            current = graph.nodes[i].outputs[0]
        return chain or None

    def _per_channel_step(self, i: int, current: str, axis: int) -> bool:
        """Whether node ``i`` maps each element of ``current`` by its value and channel alone."""
        node, tensors = self.graph.nodes[i], self.graph.tensors
        if node.op not in CHAIN_OPS or not self.quantized[i] or len(node.outputs) != 1 or node.inputs[0] != current:
            return False
        if len(node.inputs) != 2 or tensors[node.inputs[1]].data is None or tensors[node.outputs[0]].quant is None:
            return False
        other = np.asarray(tensors[node.inputs[1]].data)
        if node.op == "Gather":
            return int(node.attrs.get("axis", 0)) == axis and other.ndim == 1
        shape = tensors[current].shape
        return (other.ndim <= len(shape) and tensors[node.outputs[0]].shape == shape
                and all(d == 1 for k, d in enumerate((1,) * (len(shape) - other.ndim) + other.shape) if k != axis))

    def _lookup(self, x: str, chain: list[int]) -> Callable[[list], list]:
        """The chain after input ``x`` as a call: quantize, then one table per channel."""
        tensor = self.graph.tensors[x]
        q, axis, channels = tensor.quant, channel_axis(tensor), tensor.shape[channel_axis(tensor)]
        lo, hi, dtype = QTYPES[q.qtype]
        codes, code_axis = np.arange(lo, hi + 1), 2 if axis != 2 else 1
        shape = [1, 1, 1, 1]
        shape[axis], shape[code_axis] = channels, len(codes)
        value = np.broadcast_to(np.expand_dims(codes, [k for k in range(4) if k != code_axis]), shape).astype(dtype)
        order = np.arange(channels)
        for i in chain:  # the chain's own kernels on every code of every channel
            node = self.graph.nodes[i]
            if node.op == "Gather":  # output channel c reads input channel order[c]
                order = order[np.asarray(self.graph.tensors[node.inputs[1]].data).astype(np.int64)]
            value = self._call(i, node, [value, self.graph.tensors[node.inputs[1]].data])[0]
        table = np.moveaxis(np.asarray(value), axis, 0).reshape(channels, len(codes))
        last = len(tensor.shape) == 4 and axis == 3
        identity = bool((order == np.arange(channels)).all())
        by_byte = tables_by_byte(table, q.qtype) if last and identity else None
        if by_byte is not None:  # 8-bit NHWC: the planes in one compiled pass

            def run_planes(args: list) -> list[np.ndarray]:
                return [channels_last_planes(stored_codes(args[0], q), by_byte).transpose(0, 2, 3, 1)]

            return run_planes  # NHWC: a view of the planes (a Transpose to NCHW after it, as Keras exports
            # have, is then a free contiguous copy)
        compiled = rows_lookup(table, q.qtype) if axis == 1 or last else None
        if compiled is not None:  # 8-bit: one compiled pass, channel c's table on its (reordered) plane

            def run_compiled(args: list) -> list[np.ndarray]:
                stored = stored_codes(args[0], q)
                planes = np.ascontiguousarray(stored.transpose(0, 3, 1, 2)) if last else stored
                out = compiled(planes if identity else np.take(planes, order, axis=1))
                return [out.transpose(0, 2, 3, 1) if last else out]

            return run_compiled
        tables = [np.ascontiguousarray(table[c]) for c in range(channels)]
        before = (slice(None),) * axis
        source = [before + (int(order[c]),) for c in range(channels)]
        target = [before + (c,) for c in range(channels)]

        def run(args: list) -> list[np.ndarray]:
            stored = stored_codes(args[0], q)
            index = stored.astype(np.intp) - lo if lo else stored
            out = np.empty(stored.shape, table.dtype)
            for c in range(channels):  # output channel c looks its input channel's codes up in its table
                out[target[c]] = tables[c].take(index[source[c]])
            return [out]

        return run
