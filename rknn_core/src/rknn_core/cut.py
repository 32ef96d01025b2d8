"""Choose a model's inputs and outputs: fix input sizes, cut at inner tensors (as SSD graphs need)."""

from __future__ import annotations

from collections.abc import Sequence

from rknn_core.errors import RknnError
from rknn_core.ir import Graph


def input_shape(given: Sequence[int], current: tuple[int, ...] | None, name: str) -> tuple[int, ...]:
    """A full input shape from an ``input_size_list`` entry, which may leave out the batch axis."""
    dims = tuple(int(d) for d in given)
    if any(d <= 0 for d in dims):
        raise RknnError(f"input_size_list entry {list(given)} for input '{name}' must hold positive sizes")
    if current is not None and len(dims) == len(current) - 1:
        return (1, *dims)
    return dims


def cut_graph(graph: Graph, inputs: Sequence[str] | None = None, input_size_list: Sequence | None = None,
              outputs: Sequence[str] | None = None) -> None:
    """Make ``inputs`` the graph inputs (sized by ``input_size_list``) and ``outputs`` its outputs."""
    names = list(inputs) if inputs else list(graph.inputs)
    if input_size_list is not None and len(input_size_list) != len(names):
        raise RknnError(f"input_size_list has {len(input_size_list)} entries but the model has "
                        f"{len(names)} input(s): {', '.join(names)}")
    for i, name in enumerate(names):
        if name not in graph.tensors:
            raise RknnError(f"input '{name}' is not a tensor of the model")
        tensor = graph.tensors[name]
        if tensor.is_const:
            raise RknnError(f"input '{name}' is a constant of the model, not a value it computes")
        if input_size_list is not None:
            tensor.shape = input_shape(input_size_list[i], tensor.shape, name)
        elif tensor.shape is None or -1 in tensor.shape:
            shown = "?" if tensor.shape is None else "x".join("?" if d < 0 else str(d) for d in tensor.shape)
            raise RknnError(f"input '{name}' has a dynamic size ({shown}); give its size with input_size_list")
    if inputs:
        cut = set(names)
        graph.nodes = [n for n in graph.nodes if not all(o in cut for o in n.outputs if o)]
        graph.inputs = names
    if outputs:
        known = graph.producers()
        missing = [o for o in outputs if o not in known and o not in graph.inputs]
        if missing:
            raise RknnError(f"output(s) {', '.join(missing)} are produced by no node of the model")
        graph.outputs = list(outputs)
    graph.remove_unused()
