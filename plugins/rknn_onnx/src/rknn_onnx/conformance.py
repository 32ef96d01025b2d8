"""Which tests of onnx's own backend suite (``onnx.backend.test``) the toolkit must pass, and why the
others are left out. The test module ``tests/test_onnx_backend.py`` runs the suite with these rules;
``scripts/onnx_conformance.py`` writes the counts into ``docs/onnx-conformance.md``.

A test runs (and must pass) unless its name matches one of ``EXCLUDED`` or its model uses an op that
rknn-core does not provide (``ops_outside``). Tests for devices other than the CPU are dropped: the
simulator is the only device the backend has.
"""

from __future__ import annotations

import os
import re
import unittest
from collections import Counter

import onnx

from rknn_core.records import DEFAULT_DOMAINS, op_key
from rknn_onnx.legacy import REWRITTEN_OPS

# (pattern searched in the test name, why the test is left out); the first match gives the reason
EXCLUDED: tuple[tuple[str, str], ...] = (
    # element types no NPU of this family stores (and numpy has no native type for)
    (r"FLOAT8|float8|FLOAT4|float4|_e4m3|_e5m2|e8m0|BFLOAT16|bfloat16|INT4|int4|INT2|int2",
     "float8, float4, bfloat16, int4 or int2 element types"),
    (r"string|strnorm|regex_full_match|label_encoder_string", "string tensors"),
    (r"sequence|optional|identity_opt", "sequence or optional types"),
    # training: the toolkit compiles models for inference
    (r"^test_(adagrad|adam|momentum|nesterov_momentum)", "training optimizers (ai.onnx.preview.training)"),
    (r"training", "training mode (BatchNormalization statistics, random Dropout)"),
    # features of registered ops that no NPU of this family has
    (r"_blocked", "blocked quantization (block_size, opset 21)"),
    (r"antialias", "Resize with antialias (opset 18)"),
    (r"Conv3d|ConvTranspose3d|conv3d|MaxPool3d|AvgPool3d", "3-D convolution and pooling (5-D tensors)"),
    (r"NCd1d2d3d4d5", "7-D tensors (the simulator takes up to 6 dimensions)"),
    # the references disagree: onnxruntime (the toolkit's reference) rounds the output size first
    (r"resize_downsample_scales_(cubic|linear)_align_corners",
     "align_corners downsampling by scales: onnx's reference uses the unrounded size, onnxruntime the rounded one"),
    # the test data are uninitialised float64 memory: inference takes float data as at most float32
    (r"^test_operator_(add_broadcast|add_size1_right_broadcast|add_size1_singleton_broadcast|addconstant)$",
     "float64 inputs beyond the float32 range (inference data_type is at most float32)"),
)

CUDA_SUFFIX = "_cuda"
MARK_START, MARK_END = "<!-- generated: start -->", "<!-- generated: end -->"  # docs/onnx-conformance.md


def excluded(name: str) -> str | None:
    """Why the test ``name`` (without device suffix) is left out, or ``None``."""
    return next((why for pattern, why in EXCLUDED if re.search(pattern, name)), None)


def core_ops() -> set[str]:
    """The op keys rknn-core provides (plugins of other packages are not counted)."""
    from rknn_core.plugins import default_registry
    from rknn_core.testing import records_from

    return set(records_from(default_registry(), "ops", {"rknn_core"}))


def ops_outside(model: onnx.ModelProto, ops: set[str]) -> list[str]:
    """The op types of ``model``'s graph that ``ops`` lacks (the importer reads ``Constant`` and rewrites
    ``REWRITTEN_OPS`` itself)."""
    used = {op_key(n.op_type, "" if n.domain in DEFAULT_DOMAINS else n.domain) for n in model.graph.node}
    return sorted(used - ops - {"Constant", *REWRITTEN_OPS})


def select(test_cases: dict[str, type[unittest.TestCase]]) -> dict[str, type[unittest.TestCase]]:
    """``BackendTest(...).test_cases`` without other devices' tests and with ``EXCLUDED`` ones skipped,
    each with its reason."""
    for case in test_cases.values():
        for attr in [a for a in vars(case) if a.startswith("test_")]:
            if attr.endswith(CUDA_SUFFIX):
                delattr(case, attr)
            elif (why := excluded(attr.removesuffix("_cpu"))) is not None:
                setattr(case, attr, unittest.skip(why)(getattr(case, attr)))
    return test_cases


def _model(case) -> onnx.ModelProto:
    """The model of a loader test case (in memory, in its folder, or one of onnx's light real models)."""
    if case.model is not None:
        return case.model
    if case.model_dir is not None:
        return onnx.load(os.path.join(case.model_dir, "model.onnx"))
    root = os.path.dirname(os.path.dirname(onnx.__file__))  # case.url is relative to onnx's install folder
    return onnx.load(os.path.join(root, case.url))


KINDS = ("node", "real", "simple", "pytorch-converted", "pytorch-operator")


def survey(ops: set[str]) -> dict[str, Counter]:
    """Per kind of test: how many run, and how many are left out for each reason (``op outside: X`` for
    ops rknn-core lacks, counted under the first such op)."""
    from onnx.backend.test.loader import load_model_tests

    counts: dict[str, Counter] = {}
    for kind in KINDS:
        tally: Counter = Counter()
        for case in load_model_tests(kind=kind):
            why = excluded(case.name)
            if why is None and (outside := ops_outside(_model(case), ops)):
                why = f"op outside rknn-core: {outside[0]}"
            tally[why or "runs"] += 1
        counts[kind] = tally
    return counts


def ops_named(counts: dict[str, Counter]) -> list[str]:
    """The ops outside rknn-core that the survey met, sorted."""
    prefix = "op outside rknn-core: "
    return sorted({k[len(prefix):] for tally in counts.values() for k in tally if k.startswith(prefix)})


def render(counts: dict[str, Counter], onnx_version: str) -> str:
    """The tables of ``docs/onnx-conformance.md`` (between its generated-section markers)."""
    lines = [f"Generated by `scripts/onnx_conformance.py` from onnx {onnx_version}'s backend test suite.", "",
             "| kind | tests | run and pass | left out |", "|---|---:|---:|---:|"]
    for kind, tally in counts.items():
        total = sum(tally.values())
        lines.append(f"| {kind} | {total} | {tally['runs']} | {total - tally['runs']} |")
    reasons: Counter = Counter()
    outside: Counter = Counter()
    for tally in counts.values():
        for why, n in tally.items():
            if why.startswith("op outside rknn-core: "):
                outside[why] += n
            elif why != "runs":
                reasons[why] += n
    lines += ["", "Left out by the commented list in `rknn_onnx.conformance.EXCLUDED`:", "",
              "| reason | tests |", "|---|---:|"]
    lines += [f"| {why} | {n} |" for why, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", f"Left out because the model uses an op rknn-core does not provide: {sum(outside.values())} "
              f"tests, {len(ops_named(counts))} ops:", "", ", ".join(f"`{op}`" for op in ops_named(counts))]
    return "\n".join(lines) + "\n"


def replace_generated(document: str, generated: str) -> str:
    """``document`` with the text between its generated-section markers replaced by ``generated``."""
    head, rest = document.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    return f"{head}{MARK_START}\n{generated}{MARK_END}{tail}"
