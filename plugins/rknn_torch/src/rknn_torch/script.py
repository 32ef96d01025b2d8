"""The TorchScript side: load a .pt file, inline and simplify its graph with torch's own passes, and
describe its nodes (kind, schema, source line) for the importer. The only module that touches torch
objects besides the constant folder (``fold``)."""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import attrs

from rknn_core.errors import RknnError


@attrs.frozen
class TorchNode:
    """One TorchScript node as converters see it: values are named by their TorchScript debug names."""

    kind: str  # "aten::conv2d"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    overload: str = ""  # the schema's overload name ("vec", "Tensor", "dim"); "" for the default one
    source: str = ""  # "file.py:line" where the graph records it

    @property
    def name(self) -> str:
        """The node's name in messages and new IR tensors: its first output's debug name."""
        return self.outputs[0] if self.outputs else self.kind


def torch_module():
    """torch, or an RknnError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise RknnError("load_pytorch needs torch: pip install torch==2.13.0 (the CPU wheel: add "
                        "--index-url https://download.pytorch.org/whl/cpu)") from None
    return torch


def load_graph(path: str) -> tuple[Any, Any]:
    """The inlined and simplified TorchScript graph of ``path``'s ``forward`` and the module (in eval mode),
    whose attributes the graph's ``prim::GetAttr`` nodes read.

    Not ``torch.jit.freeze``: it gives the same graph with the attributes as constants, but takes tens of
    seconds on a DenseNet; the importer reads the attributes itself.
    """
    torch = torch_module()
    where = f"'{os.path.basename(path)}'"
    if not os.path.isfile(path):
        raise RknnError(f"load_pytorch: model file {where} does not exist")
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch, but it is what .pt models are
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location="cpu").eval()
        graph = module.forward.graph.copy()
    except Exception as exc:
        raise RknnError(f"load_pytorch: {where} is not a TorchScript model with a forward method (save it with "
                        f"torch.jit.trace or torch.jit.script, then torch.jit.save): {_first_line(exc)}") from None
    c = torch._C
    c._jit_pass_inline(graph)
    c._jit_pass_remove_mutation(graph)
    lowered = graph.copy()
    try:  # tuples inside lists or dicts (a detection backbone's OrderedDict) stay; the importer holds them
        c._jit_pass_lower_all_tuples(lowered)
        graph = lowered
    except RuntimeError:
        pass
    c._jit_pass_constant_propagation(graph)
    c._jit_pass_peephole(graph)
    c._jit_pass_dce(graph)
    return graph, module


def _first_line(exc: Exception) -> str:
    lines = [s for s in str(exc).splitlines() if s.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


_COMMENT = re.compile(r"#\s*(\S+?):(\d+):\d+\s*$")
_FRAME = re.compile(r"^(.+?)\((\d+)\): \S+$", re.M)


def source_line(node: Any, torch_dir: str) -> str:
    """Where the node comes from: the innermost traced frame outside torch itself, else the
    ``file:line`` the graph records for it; "" when unknown."""
    frames = _FRAME.findall(node.sourceRange() or "")
    if frames:
        outside = [f for f in frames if not os.path.abspath(f[0]).startswith(torch_dir)]
        path, line = (outside or frames)[0]
        return f"{path}:{line}"
    found = _COMMENT.search(str(node).splitlines()[0] if str(node) else "")
    return f"{found.group(1)}:{found.group(2)}" if found else ""


def describe(node: Any, torch_dir: str) -> TorchNode:
    """The TorchNode of a torch._C.Node."""
    schema = node.schema()
    overload = ""
    if schema != "(no schema)":
        head = schema.split("(", 1)[0]
        overload = head.split(".", 1)[1] if "." in head.split("::", 1)[-1] else ""
    return TorchNode(node.kind(), tuple(v.debugName() for v in node.inputs()),
                     tuple(v.debugName() for v in node.outputs()), overload, source_line(node, torch_dir))
