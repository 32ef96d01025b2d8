"""``register_op``: load op definitions from a Python file given by path."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os

from rknn_core.errors import RknnError
from rknn_core.records import OpDef


def ops_from_file(path: str) -> list[OpDef]:
    """The ``OPS`` list (of ``OpDef``) that the Python file at ``path`` defines."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"register_op: op definition file '{path}' does not exist")
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    # read as Python source whatever the file's extension (spec_from_file_location knows only .py & co)
    loader = importlib.machinery.SourceFileLoader(f"rknn_user_op_{digest}", os.fspath(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    try:
        loader.exec_module(module)
    except Exception as exc:
        raise RknnError(f"register_op: '{path}' failed to import: {type(exc).__name__}: {exc}") from None
    ops = getattr(module, "OPS", None)
    if not isinstance(ops, (list, tuple)) or not ops or not all(isinstance(o, OpDef) for o in ops):
        raise RknnError(f"register_op: '{path}' must define OPS, a non-empty list of rknn_core.records.OpDef")
    return list(ops)
