"""Remove Identity nodes (the frontend turns inference-time Dropout into Identity).

Readers of an Identity's output read its input instead. When the output is a graph output, the
input's producer takes over that name; an Identity that forwards a graph input, a constant or a
tensor read elsewhere to a graph output stays. Exact: no value changes.
"""

from __future__ import annotations

from rknn_core.ir import Graph
from rknn_core.passes._util import bypass
from rknn_core.records import PassSpec


def run(graph: Graph, ctx) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op == "Identity" and len(node.inputs) == 1 and node.inputs[0] and len(node.outputs) == 1:
            changed |= bypass(graph, node, ctx)
    return changed


PASS = PassSpec("remove_identity", run, min_level=1, changes_numerics=False, after=("fold_constants",),
                doc="Drop Identity (and Dropout) nodes, keeping graph output names.")
