"""Choose the nodes between the given inputs and outputs (the vendor's cut for SSD-style graphs)."""

from __future__ import annotations

from rknn_core.errors import RknnError
from rknn_tf.context import Context
from rknn_tf.graphdef import split_input


def select_nodes(by_name: dict, inputs: list[str], outputs: list[str], predef: dict, where: str) -> list:
    """NodeDefs needed for ``outputs`` when ``inputs`` are fed, in topological order."""
    placeholders = sorted(n.name for n in by_name.values() if n.op == "Placeholder")
    for what, names in (("input", inputs), ("output", outputs)):
        for name in names:
            if split_input(name)[0] not in by_name:
                raise RknnError(f"{what} node '{name}' is not in {where}; its placeholders are: "
                                f"{', '.join(placeholders) or 'none'}")
    stop = {split_input(n)[0] for n in inputs}
    order, state = [], {}
    for out in outputs:
        stack = [(split_input(out)[0], False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(by_name[name])
                continue
            if state.get(name):
                if state[name] == 1:
                    raise RknnError(f"{where} has a cycle through node '{name}' (control flow is not supported)")
                continue
            state[name] = 1
            stack.append((name, True))
            if name in stop:
                continue
            node = by_name[name]
            if node.op == "Placeholder" and name not in predef:
                raise RknnError(f"placeholder '{name}' of {where} is needed for the outputs but is neither in "
                                f"inputs nor in predef_file")
            for inp in reversed(node.input):
                if inp.startswith("^"):
                    continue
                src = split_input(inp)[0]
                if src not in by_name:
                    raise RknnError(f"node '{name}' of {where} reads '{inp}', which is not in the graph")
                if state.get(src) != 2:
                    stack.append((src, False))
    return order


def dilated_patterns(ctx: Context) -> tuple[set[str], set[str], set[str]]:
    """SpaceToBatchND -> Conv2D/DepthwiseConv2dNative -> BatchToSpaceND chains (how TF writes a dilated
    convolution): the convs to skip, the SpaceToBatchNDs to alias and the BatchToSpaceNDs to convert."""
    skip, alias, fused = set(), set(), set()
    for node in ctx.nodes.values():
        if node.op != "BatchToSpaceND" or not node.inputs:
            continue
        conv = ctx.nodes.get(node.inputs[0])
        if conv is None or conv.op not in ("Conv2D", "DepthwiseConv2dNative") or ctx.consumers.get(conv.name) != 1:
            continue
        s2b = ctx.nodes.get(conv.inputs[0]) if conv.inputs else None
        if s2b is None or s2b.op != "SpaceToBatchND" or ctx.consumers.get(s2b.name) != 1:
            continue
        if conv.name in ctx.outputs or s2b.name in ctx.outputs:
            continue
        skip.add(conv.name)
        alias.add(s2b.name)
        fused.add(node.name)
    for node in ctx.nodes.values():
        if node.op in ("SpaceToBatchND", "BatchToSpaceND") and node.name not in alias | fused:
            raise RknnError(f"unsupported TensorFlow op '{node.op}' at node '{node.name}': only the "
                            f"SpaceToBatchND -> convolution -> BatchToSpaceND pattern of a dilated convolution is supported")
    return skip, alias, fused
