"""The ``rknn`` command: convert, run, perf and inspect models through the RKNN facade; list plugins.

Every subcommand exits with 0 on success and 1 on failure (the reason is printed as an ``E`` line);
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

log = logging.getLogger("rknn")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# model file extension -> loader; the extra options each loader needs are checked in _load
LOADERS = {".onnx": "load_onnx", ".tflite": "load_tflite", ".pt": "load_pytorch", ".pth": "load_pytorch",
           ".pb": "load_tensorflow", ".cfg": "load_darknet", ".prototxt": "load_caffe", ".json": "load_mxnet"}


class CliError(Exception):
    """A user error found by the command line itself (not by the facade)."""


# progress ------------------------------------------------------------------------------------
class Steps:
    """A tqdm bar over named steps on stderr; silent when stderr is not a terminal or with --quiet."""

    def __init__(self, names: Sequence[str], quiet: bool):
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=len(names), file=sys.stderr, unit="step", leave=False,
                            bar_format="{desc:<12} {bar} {n_fmt}/{total_fmt} [{elapsed}]")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_description_str(name)
        try:
            yield
        finally:
            if self.bar is not None:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _new_rknn(args: argparse.Namespace) -> Any:
    from rknn.api import RKNN

    return RKNN(verbose=bool(getattr(args, "verbose", False)))


def _check(ret: Any, what: str) -> None:
    """A facade call failed: it already logged its ``E`` line; stop the command."""
    if ret is None or (isinstance(ret, int) and ret != 0):
        raise _Failed(what)


class _Failed(Exception):
    pass


# inputs ----------------------------------------------------------------------------------------
def _model_inputs(rknn: Any) -> list[tuple[str, tuple, str | None]]:
    model = rknn._tk.model
    if model is None:
        return []
    graph = model.graph
    return [(n, tuple(graph.tensor(n).shape or ()), graph.tensor(n).layout) for n in graph.inputs]


def _read_image(path: str, spec: tuple[str, tuple, str | None] | None) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of rknn-core
        raise CliError("reading images needs Pillow: pip install Pillow") from None
    try:
        with Image.open(path) as img:
            channels = None
            size = None
            if spec is not None and len(spec[1]) == 4:
                shape, layout = spec[1], spec[2]
                channels, h, w = (shape[3], shape[1], shape[2]) if layout == "NHWC" else (shape[1], shape[2], shape[3])
                size = (w, h)
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != size:
                log.warning("input image '%s' resized from %dx%d to %dx%d", path, *img.size, *size)
                img = img.resize(size, Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise CliError(f"cannot read image '{path}': {exc}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _read_inputs(paths: Sequence[str], rknn: Any, data_format: str) -> tuple[list[np.ndarray], str, str]:
    """Arrays for ``inference``, with the data_type and data_format to pass."""
    specs = _model_inputs(rknn)
    arrays, dtypes, formats = [], set(), set()
    for i, path in enumerate(paths):
        if not os.path.isfile(path):
            raise CliError(f"input file '{path}' does not exist")
        if path.lower().endswith(IMAGE_EXTS):
            arrays.append(_read_image(path, specs[i] if i < len(specs) else None))
            dtypes.add("uint8")
            formats.add("nhwc")
            continue
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read input '{path}' (a .npy file or an image is expected): {exc}") from None
        if not isinstance(arr, np.ndarray):
            raise CliError(f"input '{path}' holds several arrays; save one array per .npy file")
        name = str(arr.dtype)
        if name not in ("float32", "float16", "int8", "uint8", "int16"):
            name = "float32"
            arr = arr.astype(np.float32)
        arrays.append(arr)
        dtypes.add(name)
        formats.add(data_format)
    data_type = "float32" if len(dtypes) != 1 else dtypes.pop()
    if data_type == "float32":
        arrays = [a.astype(np.float32, copy=False) for a in arrays]
    return arrays, data_type, formats.pop() if len(formats) == 1 else data_format


def _print_output(index: int, name: str, out: np.ndarray, top: int) -> None:
    print(f"output {index} '{name}': shape {tuple(out.shape)} {out.dtype}")
    if out.size == 0:
        return
    # classifier-like: one vector of scores per sample, e.g. (1, 1000) or (1, 1000, 1, 1)
    batch = out.shape[0] if out.ndim > 1 else 1
    classes = out.size // max(batch, 1)
    per_sample = out.shape[1:] if out.ndim > 1 else out.shape
    if top > 0 and classes > 1 and sum(d > 1 for d in per_sample) == 1:
        rows = out.reshape(batch, classes)
        k = min(top, classes)
        for b, row in enumerate(rows):
            label = f"-----TOP {k}-----" + (f" (sample {b})" if batch > 1 else "")
            print(label)
            order = np.argsort(-row.astype(np.float64), kind="stable")[:k]
            for idx in order:
                print(f"[{int(idx)}]: {float(row[idx]):.8g}")
    else:
        flat = out.astype(np.float64).reshape(-1)
        print(f"  min {flat.min():.6g} max {flat.max():.6g} mean {flat.mean():.6g}")


# subcommands -------------------------------------------------------------------------------------
def _load(rknn: Any, args: argparse.Namespace) -> None:
    path = args.model
    if not os.path.isfile(path):
        raise CliError(f"model file '{path}' does not exist")
    ext = os.path.splitext(path)[1].lower()
    loader = args.framework and f"load_{args.framework}" or LOADERS.get(ext)
    if loader is None:
        raise CliError(f"cannot tell the framework of '{path}' from its extension; "
                       f"use --framework (onnx, tflite, pytorch, tensorflow, darknet, caffe, mxnet)")
    sizes = _size_list(args.input_size_list)
    if loader == "load_onnx":
        kw: dict[str, Any] = {"model": path}
        if args.inputs:
            kw["inputs"] = args.inputs
        if sizes:
            kw["input_size_list"] = sizes
        if args.outputs:
            kw["outputs"] = args.outputs
        _check(rknn.load_onnx(**kw), "load")
    elif loader == "load_tflite":
        _check(rknn.load_tflite(model=path), "load")
    elif loader == "load_pytorch":
        if not sizes:
            raise CliError("a PyTorch model needs --input-size-list, e.g. '3,224,224'")
        _check(rknn.load_pytorch(model=path, input_size_list=sizes), "load")
    elif loader == "load_tensorflow":
        if not (args.inputs and args.outputs and sizes):
            raise CliError("a TensorFlow .pb needs --inputs, --outputs and --input-size-list")
        _check(rknn.load_tensorflow(tf_pb=path, inputs=args.inputs, input_size_list=sizes,
                                    outputs=args.outputs), "load")
    elif loader == "load_darknet":
        if not args.weights:
            raise CliError("a Darknet .cfg needs --weights FILE.weights")
        _check(rknn.load_darknet(model=path, weight=args.weights), "load")
    elif loader == "load_caffe":
        if not args.weights:
            raise CliError("a Caffe .prototxt needs --weights FILE.caffemodel")
        _check(rknn.load_caffe(model=path, proto="caffe", blobs=args.weights), "load")
    elif loader == "load_mxnet":
        if not (args.weights and sizes):
            raise CliError("an MXNet symbol .json needs --weights FILE.params and --input-size-list")
        _check(rknn.load_mxnet(symbol=path, params=args.weights, input_size_list=sizes), "load")
    else:
        raise CliError(f"unknown framework '{args.framework}'")


def _size_list(text: str | None) -> list[list[int]] | None:
    """``'3,224,224#1,10'`` -> ``[[3,224,224],[1,10]]``."""
    if not text:
        return None
    try:
        return [[int(v) for v in part.replace(",", " ").split()] for part in text.split("#")]
    except ValueError:
        raise CliError(f"--input-size-list '{text}' must be integers, inputs separated by '#'") from None


def cmd_convert(args: argparse.Namespace) -> int:
    rknn = _new_rknn(args)
    steps = Steps(["load", "build", "export"], args.quiet)
    try:
        config: dict[str, Any] = {"optimization_level": args.optimization_level}
        if args.platform:
            config["target_platform"] = [p for item in args.platform for p in item.replace(",", " ").split()]
        if args.mean_values is not None:
            config["channel_mean_value"] = args.mean_values
        if args.reorder is not None:
            config["reorder_channel"] = args.reorder
        if args.quantized_dtype:
            config["quantized_dtype"] = args.quantized_dtype
        if args.horizontal_merge:
            config["need_horizontal_merge"] = True
        _apply_config(rknn, config)
        with steps.step("load"):
            _load(rknn, args)
        with steps.step("build"):
            _check(rknn.build(do_quantization=bool(args.quantize), dataset=args.dataset,
                              pre_compile=args.pre_compile, rknn_batch_size=args.rknn_batch_size), "build")
        with steps.step("export"):
            _check(rknn.export_rknn(args.output), "export")
        steps.close()
        if not args.quiet:
            print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")
        return 0
    finally:
        steps.close()
        rknn.release()


def _apply_config(rknn: Any, config: dict[str, Any]) -> None:
    """``config`` returns None even when it refuses a value, so call the toolkit and stop on a refusal."""
    from rknn_core.errors import RknnError

    try:
        rknn._tk.config(**config)
    except RknnError as exc:
        raise CliError(str(exc)) from None


def _open_runtime(args: argparse.Namespace, steps: Steps) -> Any:
    rknn = _new_rknn(args)
    with steps.step("load"):
        if not os.path.isfile(args.model):
            rknn.release()
            raise CliError(f"model file '{args.model}' does not exist")
        if not args.model.lower().endswith(".rknn"):
            log.warning("'%s' does not end in .rknn; reading it as an RKNN model", args.model)
        if rknn.load_rknn(args.model) != 0:
            rknn.release()
            raise _Failed("load")
    with steps.step("init"):
        if rknn.init_runtime(target=args.target, device_id=args.device_id) != 0:
            rknn.release()
            raise _Failed("init_runtime")
    return rknn


@contextlib.contextmanager
def _runtime(args: argparse.Namespace, stage: str) -> Iterator[tuple[Any, Steps]]:
    """An RKNN object with the model loaded and its runtime up; released (and progress closed) after."""
    steps = Steps(["load", "init", stage], args.quiet)
    rknn = None
    try:
        rknn = _open_runtime(args, steps)
        yield rknn, steps
    finally:
        steps.close()
        if rknn is not None:
            rknn.release()


def cmd_run(args: argparse.Namespace) -> int:
    with _runtime(args, "inference") as (rknn, steps):
        arrays, data_type, data_format = _read_inputs(args.input, rknn, args.format)
        with steps.step("inference"):
            outputs = rknn.inference(inputs=arrays, data_type=data_type, data_format=data_format)
        steps.close()
        _check(outputs, "inference")
        names = rknn._tk.model.graph.outputs
        for i, out in enumerate(outputs):
            _print_output(i, names[i] if i < len(names) else str(i), np.asarray(out), args.top)
            if args.output_dir:
                os.makedirs(args.output_dir, exist_ok=True)
                np.save(os.path.join(args.output_dir, f"output_{i}.npy"), np.asarray(out))
        return 0


def cmd_perf(args: argparse.Namespace) -> int:
    with _runtime(args, "eval_perf") as (rknn, steps):
        arrays = None
        if args.input:
            arrays, _, data_format = _read_inputs(args.input, rknn, args.format)
            if data_format == "nchw":  # eval_perf takes inference's default layout, nhwc
                specs = _model_inputs(rknn)
                arrays = [a.transpose(0, 2, 3, 1) if a.ndim == 4 and i < len(specs) and specs[i][2] else
                          a.transpose(1, 2, 0) if a.ndim == 3 and i < len(specs) and specs[i][2] else a
                          for i, a in enumerate(arrays)]
        with steps.step("eval_perf"):
            result = rknn.eval_perf(inputs=arrays, is_print=False)
        steps.close()
        _check(result, "eval_perf")
        from rknn_core.report import format_perf

        print(format_perf(result))
        return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from rknn_core import fileformat
    from rknn_core.ir_dump import dump_model

    rknn = _new_rknn(args)
    try:
        if not os.path.isfile(args.model):
            raise CliError(f"model file '{args.model}' does not exist")
        version = None
        if os.path.splitext(args.model)[1].lower() in LOADERS or args.framework:
            _load(rknn, args)  # a source model: show it as a float build would make it
            _check(rknn.build(do_quantization=False), "build")
        else:
            _check(rknn.load_rknn(args.model), "load")
            version = fileformat.file_version(args.model)
        print(dump_model(rknn._tk.model, rknn._tk.registry, version), end="")
        return 0
    finally:
        rknn.release()


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the installed plugins (or, with --json, print them as JSON)."""
    import json

    from rknn_core import log as rklog
    from rknn_core.errors import RknnError
    from rknn_core.plugin_list import describe_plugins, format_plugins, plugins_json
    from rknn_core.plugins import default_registry

    rklog.configure(bool(args.verbose))  # a skipped plugin's W line goes to stderr
    try:
        infos = describe_plugins(default_registry())
    except RknnError as exc:  # e.g. two plugins providing the same op
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(plugins_json(infos), indent=2))
    else:
        print(format_plugins(infos), end="")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """Print the devices every installed transport reaches (``RKNN.list_devices``)."""
    rknn = _new_rknn(args)
    try:
        rknn.list_devices()
    finally:
        rknn.release()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the device agent of the rknn-server plugin; every option after ``serve`` is the agent's."""
    try:
        from rknn_server.agent import main as serve_main
    except ImportError:
        raise CliError("rknn serve needs the rknn-server plugin: pip install plugins/rknn_server") from None
    return serve_main(args.agent_args)


def cmd_gui(args: argparse.Namespace) -> int:
    """Serve the visual workbench of the rknn-gui plugin; every option after ``gui`` is the GUI's."""
    try:
        from rknn_gui.cli import main as gui_main
    except ImportError:
        raise CliError("rknn gui needs the rknn-gui plugin: pip install plugins/rknn_gui") from None
    return gui_main(args.gui_args)


# argument parsing ----------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress display or summary lines")
    common.add_argument("-v", "--verbose", action="store_true", help="detailed log on stderr")

    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--framework", choices=["onnx", "tflite", "pytorch", "tensorflow", "darknet", "caffe", "mxnet"],
                        help="the source framework (default: from the file extension)")
    source.add_argument("--inputs", nargs="+", help="input tensor names (ONNX: cut/choose inputs; TensorFlow)")
    source.add_argument("--outputs", nargs="+", help="output tensor names")
    source.add_argument("--input-size-list", help="input sizes, e.g. '3,224,224'; several inputs separated by '#'")
    source.add_argument("--weights", help="the weights file (.weights for Darknet, .caffemodel, .params)")

    runtime = argparse.ArgumentParser(add_help=False)
    runtime.add_argument("model", help="the .rknn model")
    runtime.add_argument("--target", default=None,
                         help="a chip, e.g. rk1808 (`rknn plugins` lists the installed targets); default: the PC simulator")
    runtime.add_argument("--device-id", default=None, help="which connected device to use")
    runtime.add_argument("--format", choices=["nhwc", "nchw"], default="nhwc",
                         help="layout of .npy inputs (images are always HWC); default nhwc")

    parser = argparse.ArgumentParser(prog="rknn", description="Convert, run and analyse models for Rockchip NPUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("convert", parents=[common, source], help="convert a model to .rknn",
                       description="Load a model, build it (float unless --quantize) and export an .rknn file.")
    p.add_argument("model", help="the source model (.onnx, .tflite, .pt, .pb, .cfg, .prototxt, .json)")
    p.add_argument("-o", "--output", required=True, help="the .rknn file to write")
    p.add_argument("--platform", action="append",
                   help="target platform(s), e.g. rk1808 (default); `rknn plugins` lists the installed targets")
    p.add_argument("--optimization-level", type=int, default=3, choices=[0, 1, 2, 3])
    p.add_argument("--mean-values", help="channel_mean_value, e.g. '103.94 116.78 123.68 58.82'")
    p.add_argument("--reorder", help="reorder_channel, e.g. '2 1 0'")
    quant = p.add_mutually_exclusive_group()
    quant.add_argument("--quantize", action="store_true", help="quantize (needs --dataset)")
    quant.add_argument("--no-quantization", action="store_true", help="build a float model (the default)")
    p.add_argument("--dataset", help="calibration dataset file for --quantize")
    p.add_argument("--quantized-dtype", help="an installed quantizer, e.g. asymmetric_quantized-u8 (default), "
                                             "dynamic_fixed_point-8; `rknn plugins` lists them")
    p.add_argument("--pre-compile", action="store_true", help="lower for the device (the simulator cannot run it)")
    p.add_argument("--rknn-batch-size", type=int, default=1, help="leading batch of the built model")
    p.add_argument("--horizontal-merge", action="store_true", help="need_horizontal_merge=True")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("run", parents=[common, runtime], help="run an .rknn model on inputs")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help=".npy or image files, one per model input")
    p.add_argument("--top", type=int, default=5, help="top-K classes printed for classifier outputs (0: none)")
    p.add_argument("--output-dir", help="also save each output as output_<i>.npy here")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("perf", parents=[common, runtime], help="per-layer times (eval_perf)")
    p.add_argument("--input", nargs="+", metavar="FILE", help=".npy or image files (default: zeros)")
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("inspect", parents=[common, source], help="print a model's layers, tensors and totals")
    p.add_argument("model", help="an .rknn file (or a source model, shown after a float build)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("devices", parents=[common], help="list the connected devices (list_devices)",
                       description="The device ids each installed transport reaches: adb, ntb (USB), tcp "
                                   "(RKNN_DEVICES); see docs/devices.md.")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("serve", help="run the device agent (rknn-server); `rknn serve --help` lists its options",
                       add_help=False, description="The rknn device agent (needs the rknn-server plugin).")
    p.add_argument("agent_args", nargs=argparse.REMAINDER, help="options of the agent, e.g. --emulate rk1808 --port 7808")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("gui", help="the visual workbench in a browser (rknn-gui); `rknn gui --help` lists its options",
                       add_help=False, description="The visual workbench (needs the rknn-gui plugin).")
    p.add_argument("gui_args", nargs=argparse.REMAINDER, help="options of the GUI, e.g. --port 8808 --no-browser")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("plugins", parents=[common], help="list the installed plugins and what they provide",
                       description="Every installed plugin with its distribution, version, plugin API range and "
                                   "records, then the skipped ones with why.")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rknn`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # the agent parses its own options (`rknn serve --help`)
        args = argparse.Namespace(func=cmd_serve, agent_args=argv[1:], verbose=False)
    elif argv[:1] == ["gui"]:  # the GUI parses its own options (`rknn gui --help`)
        args = argparse.Namespace(func=cmd_gui, gui_args=argv[1:], verbose=False)
    else:
        args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        from rknn_core import log as rklog

        if not log.handlers:
            rklog.configure(bool(getattr(args, "verbose", False)))
        log.error("%s", exc)
        return 1
    except _Failed:
        return 1  # the facade has logged the reason
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rknn inspect m.rknn | head`
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":
    sys.exit(main())
