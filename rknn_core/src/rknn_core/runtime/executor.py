"""Run a Graph node by node with numpy kernels, freeing each tensor after its last use.

For each set of fed tensors (and of tensors to keep) the executor works out a plan once: the steps
that compute the outputs, each with its constant arguments in place and its call prepared (what is a
function of the node alone worked out once, see ``prepare``), the names it reads from the running values
and the names it frees after it. A run only walks that plan, so a plan holds the graph as it was when
worked out; ``compute`` (one node, as bias correction and accuracy analysis run them) reads the graph as
it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import attrs
import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node
from rknn_core.passes.fold_preprocess import FOLDED
from rknn_core.plugins import Registry
from rknn_core.records import ChainNode
from rknn_core.shape_inference import op_for


@attrs.frozen
class Step:
    """One call of a plan: ``call(args) -> outputs`` with ``args`` = ``template`` where ``reads`` (position,
    name) take running values; ``node`` is what the time is booked to."""

    node: Node
    call: Callable[[list], list]
    template: tuple
    reads: tuple[tuple[int, str], ...]
    outputs: tuple[str, ...]
    frees: tuple[str, ...]


class Executor:
    """A compiled run plan: kernels in order over the running values; constants preloaded."""

    CHAINS = True  # whether plans chain nodes (``OpDef.prepare_chain`` prepares float kernels)

    def __init__(self, graph: Graph, registry: Registry):
        self.graph = graph
        self.opdefs = [op_for(node, registry) for node in graph.nodes]
        self.kernels = [opdef.kernel for opdef in self.opdefs]
        self._plans: dict[tuple[frozenset, frozenset], list[Step]] = {}

    def needed_nodes(self, fed: frozenset) -> list[int]:
        """Indices of the nodes needed for the outputs when the tensors in ``fed`` are given, in order."""
        producers = {out: i for i, node in enumerate(self.graph.nodes) for out in node.outputs}
        needed, stack = set(), [o for o in self.graph.outputs if o not in fed]
        while stack:
            i = producers.get(stack.pop())
            if i is None or i in needed:
                continue
            needed.add(i)
            stack.extend(t for t in self.graph.nodes[i].inputs if t and t not in fed)
        return sorted(needed)

    def calls(self, indices: list[int], fed: frozenset, pinned: frozenset) -> list[tuple[Node, Callable, list[str], list[str]]]:
        """(node, call, inputs, outputs) for the needed nodes, a node and the one node that reads its output as
        one call where its op prepares such a chain (``OpDef.prepare_chain``); subclasses may merge others."""
        nodes, calls, chained = self.graph.nodes, [], set()
        readers = self.graph.consumers()
        position = {id(nodes[i]): i for i in indices}
        for i in indices:
            if i in chained:
                continue
            node = nodes[i]
            j = self._sole_reader(i, readers, position, fed, pinned)
            call = None if j is None else named_failures(node, self._chain, i, j, fed)
            if call is None:
                calls.append((node, self._bound(i, fed), node.inputs, node.outputs))
            else:
                chained.add(j)
                calls.append((nodes[j], call, node.inputs, nodes[j].outputs))
        return calls

    def _sole_reader(self, i: int, readers: dict, position: dict, fed: frozenset, pinned: frozenset) -> int | None:
        """The index of the one needed node that reads node ``i``'s single output (at input 0, once), when the
        output is needed by nothing else and the node's op prepares chains; else None."""
        node = self.graph.nodes[i]
        if not self.CHAINS or self.opdefs[i].prepare_chain is None or len(node.outputs) != 1:
            return None
        out = node.outputs[0]
        users = readers.get(out, [])
        if not out or out in pinned or out in fed or len(users) != 1 or users[0].inputs.count(out) != 1 \
                or users[0].inputs[0] != out:
            return None
        return position.get(id(users[0]))

    def _chain(self, i: int, j: int, fed: frozenset) -> Callable[[list], list] | None:
        node, consumer = self.graph.nodes[i], self.graph.nodes[j]
        constants, consumer_constants = self.constants(node, fed), self.constants(consumer, fed)
        link = ChainNode(consumer.op, consumer.attrs, consumer_constants, computed_inputs(consumer, consumer_constants))
        return self.opdefs[i].prepare_chain(node.attrs, constants, computed_inputs(node, constants), link)

    def _bound(self, i: int, fed: frozenset) -> Callable[[list], list]:
        """Node ``i``'s prepared call for a plan fed ``fed`` (a failure to prepare names the node; ``run`` names
        it on a failure of the call)."""
        node = self.graph.nodes[i]
        return named_failures(node, self.prepare, i, node, fed)

    def _plan(self, fed: frozenset, keep: frozenset) -> list[Step]:
        key = (fed, keep)
        if key not in self._plans:
            pinned = frozenset(self.graph.outputs) | keep
            calls = self.calls(self.needed_nodes(fed), fed, pinned)
            last_use = {name: step for step, (_, _, inputs, _) in enumerate(calls) for name in inputs if name}
            steps, known = [], set(fed)
            for step, (node, call, inputs, outputs) in enumerate(calls):
                template, reads = [], []
                for position, name in enumerate(inputs):
                    data = None if not name or name in fed else self.graph.tensors[name].data
                    template.append(data)
                    if name and data is None:
                        if name not in known:
                            raise RknnError(f"tensor '{name}' has no value (is an input missing?)")
                        reads.append((position, name))
                known.update(outputs)
                frees = tuple(dict.fromkeys(n for n in inputs if n and last_use[n] == step and n not in pinned
                                            and (n in fed or self.graph.tensors[n].data is None)))
                steps.append(Step(node, call, tuple(template), tuple(reads), tuple(outputs), frees))
            self._plans[key] = steps
        return self._plans[key]

    def run(self, feeds: dict[str, np.ndarray], times: list | None = None,
            keep: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Values of the graph outputs (and of ``keep``); with ``times``, appends (node, seconds)."""
        values: dict[str, np.ndarray] = self._unfolded(feeds)
        for step in self._plan(frozenset(values), frozenset(keep)):
            args = list(step.template)
            try:
                for position, name in step.reads:
                    args[position] = values[name]
            except KeyError as exc:  # the plan found a producer, but its kernel gave fewer outputs than named
                raise RknnError(f"tensor '{exc.args[0]}' has no value (is an input missing?)") from None
            try:
                if times is None:
                    outs = step.call(args)
                else:
                    start = time.perf_counter()
                    outs = step.call(args)
                    times.append((step.node, time.perf_counter() - start))
            except Exception as exc:
                raise named_error(step.node, exc) from (None if isinstance(exc, RknnError) else exc)
            for name, value in zip(step.outputs, outs):
                if name:
                    values[name] = value
            for name in step.frees:
                values.pop(name, None)
        return values

    def _unfolded(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` with any preprocessed tensor the ``fold_preprocess`` pass folded away (fed by
        ``inputs_pass_through``) turned back into the model input it stands for."""
        folded = self.graph.metadata.get(FOLDED)
        if not folded or not any(name in folded for name in feeds):
            return dict(feeds)
        values = {}
        for name, value in feeds.items():
            if name not in folded:
                values[name] = value
                continue
            entry = folded[name]
            shape = [1] * value.ndim
            shape[entry["axis"]] = -1
            chain_order = value * np.asarray(entry["scale"], value.dtype).reshape(shape) + \
                np.asarray(entry["mean"], value.dtype).reshape(shape)  # z = (x[perm] - mean) / scale
            source = np.empty_like(chain_order)
            index = [slice(None)] * value.ndim
            index[entry["axis"]] = entry["perm"]
            source[tuple(index)] = chain_order
            values[entry["input"]] = source
        return values

    def prepare(self, i: int, node: Node, fed: frozenset | None = None) -> Callable[[list], list]:
        """Node ``i``'s outputs as a function of its input values, with what depends on the node and the
        graph alone looked up once (subclasses change the arithmetic). In a plan fed ``fed`` the constant
        inputs that are not fed are always the graph's own (the plan's template holds them)."""
        kernel, prepare = self.kernels[i], self.opdefs[i].prepare
        if fed is not None and prepare is not None:
            constants = self.constants(node, fed)
            bound = prepare(node.attrs, constants, computed_inputs(node, constants))
            if bound is not None:
                return bound
        return lambda args: kernel(args, node.attrs)

    def constants(self, node: Node, fed: frozenset | None) -> list:
        """Each input's constant data (the graph's, unless a plan fed ``fed`` feeds it; None for the others)."""
        tensors = self.graph.tensors
        return [tensors[n].data if n and (fed is None or n not in fed) else None for n in node.inputs]

    def compute(self, i: int, node: Node, args: list) -> list[np.ndarray]:
        """One node's outputs from its input values, on the graph as it is now."""
        return self.prepare(i, node)(args)

    def _call(self, i: int, node: Node, args: list) -> list[np.ndarray]:
        return named_failures(node, self.compute, i, node, args)


def computed_inputs(node: Node, constants: list) -> tuple[int, ...]:
    """The positions of ``node``'s inputs computed at run time (present and not constant)."""
    return tuple(k for k, n in enumerate(node.inputs) if n and constants[k] is None)


def named_failures(node: Node, fn: Callable, *args):
    """``fn(*args)``; a failure is raised again as an RknnError that names ``node``."""
    try:
        return fn(*args)
    except Exception as exc:
        raise named_error(node, exc) from (None if isinstance(exc, RknnError) else exc)


def named_error(node: Node, exc: Exception) -> RknnError:
    """The RknnError that reports ``exc`` raised by ``node``."""
    if isinstance(exc, RknnError):
        return RknnError(f"node '{node.name}' ({node.op}) failed: {exc}")
    return RknnError(f"node '{node.name}' ({node.op}) failed: {type(exc).__name__}: {exc}")
