"""Hook specifications: the whole plugin interface of the toolkit.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, registered through
the entry-point group ``rknn``::

    [project.entry-points.rknn]
    onnx = "rknn_onnx.plugin"

Every hook takes no argument and returns an iterable of typed records from
:mod:`rknn_core.records`. Names must be unique across all plugins; a clash is refused with the
packages that supplied both. Plugins import heavy frameworks inside the record's callables, never at
import time, so listing plugins stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from rknn_core.records import Converter, Frontend, OpDef, PassSpec, Quantizer, Target, Transport

PROJECT = "rknn"
PLUGIN_API = 1
"""The plugin API version of this core. A plugin module may declare the versions it works with as
``RKNN_PLUGIN_API = (min, max)`` (inclusive); one whose range excludes this version is skipped with a
warning. A plugin that declares nothing is accepted (``rknn plugins`` shows it as ``api undeclared``).
The version goes up only when a change to the hooks or records would break existing plugins."""
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def rknn_frontends() -> Iterable[Frontend]:
    """Model importers. ``Frontend.loader`` is the RKNN method it serves (``load_onnx``);
    ``Frontend.load(**kwargs)`` receives that method's keyword arguments (and the session's
    ``registry`` when it declares that parameter) and returns a ``Graph``."""


@hookspec
def rknn_ops() -> Iterable[OpDef]:
    """Operators: shape inference, float reference kernel, quantized kernel and cost of each.
    A custom-op package is a plugin that implements only this hook."""


@hookspec
def rknn_converters() -> Iterable[Converter]:
    """Framework op converters of the frontends, keyed by ``(frontend, op)``: a plugin can teach the
    TFLite or TensorFlow importer (and later ones) a new op."""


@hookspec
def rknn_passes() -> Iterable[PassSpec]:
    """Graph optimizations, each with the lowest ``optimization_level`` it runs at and whether it
    may change numerics (then it runs only at level 3)."""


@hookspec
def rknn_quantizers() -> Iterable[Quantizer]:
    """Quantization schemes named as ``config(quantized_dtype=...)`` names them."""


@hookspec
def rknn_targets() -> Iterable[Target]:
    """Execution targets: the PC simulator and chip families (``rk1808``, ``rv1126`` ...)."""


@hookspec
def rknn_transports() -> Iterable[Transport]:
    """Ways to reach a connected device (``adb``, ``ntb``, ``tcp``)."""


HOOKS = ("rknn_frontends", "rknn_ops", "rknn_converters", "rknn_passes", "rknn_quantizers", "rknn_targets", "rknn_transports")
