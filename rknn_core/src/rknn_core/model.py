"""A built model: the optimized graph plus what the runtime and the .rknn file need to know."""

from __future__ import annotations

from typing import Any

import attrs

from rknn_core.ir import Graph


@attrs.define
class RknnModel:
    """What ``build`` produces, ``export_rknn`` writes and ``load_rknn`` reads back."""

    graph: Graph
    target_platform: list[str] = attrs.field(factory=lambda: ["rk1808"])
    pre_compile: bool = False
    rknn_batch_size: int = 1
    quantized_dtype: str | None = None
    # input name -> the tensor after in-model preprocessing (what inputs_pass_through feeds)
    preprocessed: dict[str, str] = attrs.field(factory=dict)
    extra: dict[str, Any] = attrs.field(factory=dict)
    # kind ("ops", "quantizers", "targets") -> name -> who supplied it (provenance.collect); {} in old files
    provenance: dict[str, dict[str, dict[str, Any]]] = attrs.field(factory=dict)
