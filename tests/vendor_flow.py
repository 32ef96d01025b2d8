"""A vendor-style script on a small ONNX model made with onnx.helper: a float build and a u8 quantized
build, each exported to .rknn, reloaded and run in the simulator on a uint8 HWC image (mean 127.5,
scale 127.5). The outputs go to ``OUT/outputs.npz``.

    python tests/vendor_flow.py OUT [GIVEN.rknn]

With GIVEN.rknn it also runs that model on the same image (output ``given``): a quantized model built
elsewhere must give the same integers here.

The graph touches every compiled kernel: padded and 1x1 convolutions, depthwise, Add, pools, Gemm.
tests/test_native_fallback.py runs it with and without the compiled kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rknn.api import RKNN


def small_model() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=8),
        helper.make_node("Conv", ["r1", "wp", "bp"], ["c3"], strides=[2, 2]),
        helper.make_node("Add", ["c2", "c3"], ["a"]),
        helper.make_node("AveragePool", ["a"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "wd": w(8, 1, 3, 3), "bd": w(8), "wp": w(8, 8, 1, 1), "bp": w(8),
             "wf": w(5, 8), "bf": w(5)}
    graph = helper.make_graph(nodes, "flow", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def convert_and_run(folder: Path, image: np.ndarray, quantize: bool) -> np.ndarray:
    name = "u8" if quantize else "float"
    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2")
    assert rknn.load_onnx(model=str(folder / "model.onnx")) == 0
    assert rknn.build(do_quantization=quantize, dataset=str(folder / "dataset.txt")) == 0
    assert rknn.export_rknn(str(folder / f"{name}.rknn")) == 0
    rknn.release()
    return run(folder / f"{name}.rknn", image)


def run(path: Path, image: np.ndarray) -> np.ndarray:
    rknn = RKNN()
    assert rknn.load_rknn(str(path)) == 0
    assert rknn.init_runtime() == 0
    out = rknn.inference(inputs=[image])[0]
    rknn.release()
    return out


def main(folder: Path, given: Path | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(small_model(), folder / "model.onnx")
    rng = np.random.default_rng(0)
    with open(folder / "dataset.txt", "w") as f:
        for i in range(3):
            np.save(folder / f"{i}.npy", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
            f.write(f"{i}.npy\n")
    image = np.load(folder / "0.npy")
    outputs = {"float": convert_and_run(folder, image, False), "u8": convert_and_run(folder, image, True)}
    if given is not None:
        outputs["given"] = run(given, image)
    np.savez(folder / "outputs.npz", **outputs)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
