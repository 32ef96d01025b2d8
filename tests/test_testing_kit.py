"""The plugin author kit ``rknn_core.testing``: each helper passes a correct plugin and catches a wrong one."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import attrs
import numpy as np
import pytest
from onnx import helper

import rknn_core.plugins as plugins
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.plugins import default_registry
from rknn_core.quant.kernels import lut_kernel
from rknn_core.records import OpDef
from rknn_core.testing import (
    check_quant_kernel,
    check_random_shapes,
    make_model,
    random_shape,
    record_package,
    records_from,
    registry_with,
    run_ort,
    save_model,
    single_op,
    vendor_flow,
)


def _same_shape(inputs, attrs):
    return [TensorInfo(inputs[0].shape, inputs[0].dtype)]


def _sigmoid(x):
    return (1 / (1 + np.exp(-np.asarray(x, np.float64)))).astype(np.float32)


class OpsPlugin:
    """A plugin object providing the given ``OpDef``s."""

    def __init__(self, *opdefs: OpDef):
        self.opdefs = opdefs

    @hookimpl
    def rknn_ops(self):
        return list(self.opdefs)


def test_importing_the_kit_needs_no_test_framework():
    code = ("import sys, rknn_core.testing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', 'onnx', 'onnxruntime', 'hypothesis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_random_shapes_follow_the_limits():
    rng = np.random.default_rng(0)
    shapes = [random_shape(rng, 2, 3, 4) for _ in range(50)]
    assert {len(s) for s in shapes} == {2, 3}
    assert min(min(s) for s in shapes) == 1 and max(max(s) for s in shapes) == 4


def test_check_random_shapes_passes_a_core_op_on_varied_shapes():
    shapes = check_random_shapes("Sigmoid", trials=4, seed=1)
    assert len(shapes) == 4 and len(set(shapes)) > 1
    assert check_random_shapes("Add", n_inputs=2, trials=2, seed=2, max_rank=2)


def test_check_random_shapes_catches_a_wrong_float_kernel():
    """A 'Mish' computing x * tanh(x) (softplus forgotten) is refused against onnxruntime."""
    wrong = OpDef("Mish", _same_shape, lambda inputs, attrs: [inputs[0] * np.tanh(inputs[0])])
    registry = registry_with(OpsPlugin(wrong), name="wrong_mish", exclude=["op_example"])
    assert registry.origin("ops", "Mish") == "wrong_mish"
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_random_shapes("Mish", trials=1, opset=18, registry=registry)


@pytest.mark.parametrize("dtype", ["asymmetric_quantized-u8", "dynamic_fixed_point-8", "dynamic_fixed_point-16"])
def test_check_quant_kernel_measures_a_lookup_table_within_half_an_lsb(dtype):
    x = (np.random.default_rng(3).standard_normal((3, 40)) * 4).astype(np.float32)
    worst = check_quant_kernel("Sigmoid", [x], quantized_dtype=dtype)
    assert 0.05 < worst <= 0.5 + 1e-6  # output rounding is all a lookup table adds


def test_check_quant_kernel_covers_two_input_and_same_scale_ops():
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((2, 16)) * 3).astype(np.float32), rng.standard_normal((2, 16)).astype(np.float32)
    assert 0 < check_quant_kernel("Add", [a, b]) <= 1.0
    assert check_quant_kernel("MaxPool", [a.reshape(1, 2, 4, 4)], {"kernel_shape": [2, 2]}) == pytest.approx(0, abs=1e-6)


def test_check_quant_kernel_catches_a_kernel_off_by_more_than_the_bound():
    """A quantized kernel computing sigmoid(x + 0.1) instead of sigmoid(x) is several LSBs off."""
    op = OpDef("ShiftedSigmoid", _same_shape, lambda inputs, attrs: [_sigmoid(inputs[0])],
               quant_kernel=lut_kernel(lambda x: _sigmoid(x + 0.1)))
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    with pytest.raises(AssertionError, match=r"ShiftedSigmoid \(asymmetric_quantized-u8\) output 0: .* LSB"):
        check_quant_kernel(op, [x])
    assert check_quant_kernel(op, [x], lsb=10) > 1


def test_check_quant_kernel_refuses_an_op_without_quantized_form():
    op = OpDef("FloatOnly", _same_shape, lambda inputs, attrs: [inputs[0]])
    with pytest.raises(AssertionError, match="'FloatOnly' has no quantized form"):
        check_quant_kernel(op, [np.ones(3, np.float32)])
    with pytest.raises(AssertionError, match="'NoSuchOp' is not in the registry"):
        check_quant_kernel("NoSuchOp", [np.ones(3, np.float32)])


def test_registry_with_adds_the_plugin_and_can_leave_installed_ones_out():
    probe = OpDef("KitProbe", _same_shape, lambda inputs, attrs: [inputs[0]], domain="com.kit")
    full = registry_with(OpsPlugin(probe), name="probe")
    assert full.origin("ops", "com.kit:KitProbe") == "probe"
    assert full.origin("ops", "Relu") == "core" and full.frontend_for("load_onnx").name == "onnx"
    bare = registry_with(OpsPlugin(probe), name="probe", installed=False)
    assert set(bare.table("frontends")) == set() and bare.op("com.kit:KitProbe") is probe
    assert bare.origin("ops", "Relu") == "core"
    without_onnx = registry_with(OpsPlugin(probe), exclude=["onnx"])
    assert not any(f.loader == "load_onnx" for f in without_onnx.table("frontends").values())


def test_registry_with_an_installed_plugin_module_replaces_its_entry_point():
    pytest.importorskip("rknn_op_example")
    registry = registry_with("rknn_op_example.plugin", name="mish_under_test")
    assert registry.origin("ops", "Mish") == "mish_under_test"  # no "provided twice" clash
    assert "op_example" not in {registry.pm.get_name(p) for p in registry.pm.get_plugins()}


def test_records_from_keeps_the_records_of_the_named_packages():
    probe = OpDef("KitProbe", _same_shape, lambda inputs, attrs: [inputs[0]], domain="com.kit")
    registry = registry_with(OpsPlugin(probe), name="probe")
    assert record_package(registry, "ops", "Conv") == "rknn_core"
    assert record_package(registry, "ops", "com.kit:KitProbe") == __name__.split(".")[0]
    core_ops = records_from(registry, "ops", ["rknn_core"])
    assert "Conv" in core_ops and "com.kit:KitProbe" not in core_ops
    assert set(records_from(registry, "ops", [__name__.split(".")[0]])) == {"com.kit:KitProbe"}
    assert records_from(registry, "frontends", ["rknn_onnx"]) == {"onnx": registry.table("frontends")["onnx"]}


def _sigmoid_model(tmp_path) -> tuple[str, np.ndarray]:
    x = (np.random.default_rng(5).standard_normal((1, 3, 4, 4)) * 3).astype(np.float32)
    return save_model(single_op("Sigmoid", {"x": x}), str(tmp_path)), x


def test_vendor_flow_float_round_trip_through_a_file(tmp_path):
    path, x = _sigmoid_model(tmp_path)
    (y,) = vendor_flow(path, [x], tmp_dir=str(tmp_path))
    assert os.path.isfile(tmp_path / "model.rknn")
    np.testing.assert_allclose(y, run_ort(path, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_vendor_flow_quantized_with_samples(tmp_path):
    path, x = _sigmoid_model(tmp_path)
    samples = [[(np.random.default_rng(i).standard_normal(x.shape) * 3).astype(np.float32)] for i in range(4)]
    (y,) = vendor_flow(path, [x], quantize=True, dataset=samples, tmp_dir=str(tmp_path))
    assert (tmp_path / "dataset.txt").read_text().splitlines() == [f"sample{i}_input0.npy" for i in range(4)]
    ref = run_ort(path, {"x": x})[0]
    # input LSB ~0.08 times sigmoid's slope (<= 1/4) plus half an output LSB; a float run would be exact
    assert 0 < np.abs(y - ref).max() < 0.02


def test_vendor_flow_names_the_failing_step_and_its_error(tmp_path):
    x = np.ones((1, 4), np.float32)
    node = helper.make_node("Unheard", ["x"], ["y"], name="odd_node", domain="com.nowhere")
    path = save_model(make_model([node], {"x": x}, ["y"]), str(tmp_path))
    with pytest.raises(AssertionError, match=r"load_onnx failed \(returned -1\): E unsupported op 'Unheard' at node "
                                             r"'odd_node'"):
        vendor_flow(path, [x], tmp_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="build failed .*dataset"):
        vendor_flow(save_model(single_op("Relu", {"x": x}), str(tmp_path)), [x], quantize=True)


def test_vendor_flow_runs_a_plugin_that_is_not_installed(tmp_path):
    """``registry=`` puts a plugin under test behind the facade for the flow only."""
    op = OpDef("Softsign2", _same_shape, lambda inputs, attrs: [inputs[0] / (1 + np.abs(inputs[0]))], domain="com.kit")
    x = np.linspace(-5, 5, 12, dtype=np.float32).reshape(1, 12)
    node = helper.make_node("Softsign2", ["x"], ["y"], domain="com.kit")
    path = save_model(make_model([node], {"x": x}, ["y"]), str(tmp_path))
    before = plugins._default
    (y,) = vendor_flow(path, [x], tmp_dir=str(tmp_path), registry=registry_with(OpsPlugin(op), name="kit"))
    np.testing.assert_allclose(y, x / (1 + np.abs(x)), rtol=1e-6)
    assert plugins._default is before and default_registry().op("com.kit:Softsign2") is None


def test_the_quantized_kernel_examples_in_the_docs_keep_their_bound():
    """The code blocks of docs/plugins.md, Quantized kernels, run and pass ``check_quant_kernel``."""
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quantized kernels$(.*?)^## ", doc, re.M | re.S).group(1)
    namespace = {"mish": np.tanh}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        exec(block, namespace)
    registry = default_registry()
    rng = np.random.default_rng(6)
    a, b = (rng.standard_normal((3, 8)) * 2).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)
    sum_on_attr = OpDef("ReduceSum", _same_shape, lambda inputs, a: [inputs[0].sum(axis=tuple(a["axes"]))])
    cases = [(registry.op("Tanh"), "quant_kernel", [a], {}), (registry.op("Sub"), "sub_quant", [a, b], {}),
             (registry.op("Max"), "max_quant", [a, b], {}),
             (sum_on_attr, "reduce_sum_quant", [a], {"axes": [1], "keepdims": 0})]
    for opdef, kernel, inputs, op_attrs in cases:
        opdef = attrs.evolve(opdef, quant_kernel=namespace[kernel], quant_same_scale=False)
        assert 0 < check_quant_kernel(opdef, inputs, op_attrs) <= 1.0, opdef.name


def test_check_quant_kernel_passes_integer_inputs_through():
    """ReduceMean (opset 18) reads its axes from an int64 input: it stays integer, the float data is quantized."""
    x = (np.random.default_rng(7).standard_normal((3, 10)) * 2).astype(np.float32)
    assert 0 < check_quant_kernel("ReduceMean", [x, np.array([1], np.int64)], {"keepdims": 1}) <= 1.0


def test_cached_folder_builds_once_and_a_losing_builder_leaves_nothing(tmp_path):
    from rknn_core.testing import cached_folder

    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "ref.npz").write_bytes(b"x")

    target = tmp_path / "cache" / "net-v1"
    assert cached_folder(target, build) == target and (target / "ref.npz").read_bytes() == b"x"
    assert cached_folder(target, build) == target and len(calls) == 1  # the second call finds it
    (target / "ref.npz").unlink()  # another worker's half-built folder: the rename loses, the temp goes
    assert cached_folder(target, build) == target and len(calls) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["net-v1"]
