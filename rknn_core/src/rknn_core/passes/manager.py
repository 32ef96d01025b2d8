"""Run the registered passes in dependency order, each to a fixpoint, verifying after each."""

from __future__ import annotations

import logging
import os

import attrs

from rknn_core.errors import RknnError
from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_core.records import PassSpec
from rknn_core.shape_inference import infer_shapes

log = logging.getLogger("rknn")
MAX_ROUNDS = 50


@attrs.define
class PassContext:
    """What a pass may consult: the registry (op kernels for folding) and the build options.

    ``options["protected"]``: tensor names that must survive (the outputs of in-model preprocessing
    that ``inputs_pass_through`` feeds). ``options["verify"]``: run the graph verifier after every
    change (also switched on by the environment variable ``RKNN_VERIFY_PASSES=1``).
    """

    registry: Registry
    level: int
    options: dict = attrs.field(factory=dict)


def order_passes(passes: list[PassSpec]) -> list[PassSpec]:
    """Passes sorted so that each runs after the ones it names in ``after`` (stable otherwise)."""
    by_name = {p.name: p for p in passes}
    ordered: list[PassSpec] = []
    visiting: set[str] = set()

    def visit(p: PassSpec) -> None:
        if p in ordered:
            return
        if p.name in visiting:
            raise RknnError(f"passes have a cyclic 'after' dependency through '{p.name}'")
        visiting.add(p.name)
        for dep in p.after:
            if dep in by_name:
                visit(by_name[dep])
        visiting.discard(p.name)
        ordered.append(p)

    for p in passes:
        visit(p)
    return ordered


def selected_passes(registry: Registry, level: int, late: bool = False) -> list[PassSpec]:
    """The passes that run at ``optimization_level`` ``level`` (the ``late`` ones, or the others)."""
    chosen = [p for p in registry.table("passes").values()
              if level >= p.min_level and (level == 3 or not p.changes_numerics) and p.late == late]
    return order_passes(chosen)


def run_passes(graph: Graph, ctx: PassContext, late: bool = False) -> list[str]:
    """Apply every selected pass (``late``: those that run at the end of build, after quantization) until
    it stops changing the graph; returns the names that changed it."""
    changed_by = []
    verify = bool(ctx.options.get("verify")) or os.environ.get("RKNN_VERIFY_PASSES", "") not in ("", "0")
    if verify:
        from rknn_core.verify import verify_graph

        verify_graph(graph, ctx.registry)
    for spec in selected_passes(ctx.registry, ctx.level, late):
        for _ in range(MAX_ROUNDS):
            if not spec.run(graph, ctx):
                break
            if spec.name not in changed_by:
                changed_by.append(spec.name)
            graph.remove_unused()
            try:
                infer_shapes(graph, ctx.registry)
                if verify:
                    verify_graph(graph, ctx.registry)
            except RknnError as exc:
                raise RknnError(f"pass '{spec.name}' left a broken graph: {exc}") from None
        else:
            log.warning("pass '%s' still changed the graph after %d rounds; moving on", spec.name, MAX_ROUNDS)
        log.debug("pass %s done: %d nodes", spec.name, len(graph.nodes))
    return changed_by
