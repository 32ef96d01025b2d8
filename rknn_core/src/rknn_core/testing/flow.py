"""The vendor flow in one call: ``RKNN()`` -> config -> load_* -> build -> export_rknn -> ``RKNN()``
-> load_rknn -> init_runtime -> inference, asserting each step succeeded."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rknn_core import plugins
from rknn_core.log import collect_errors
from rknn_core.plugins import Registry


@contextlib.contextmanager
def using_registry(registry: Registry | None) -> Iterator[None]:
    """Every ``RKNN()`` created inside the block starts from ``registry`` (``None``: the installed plugins)."""
    if registry is None:
        yield
        return
    saved, plugins._default = plugins._default, registry
    try:
        yield
    finally:
        plugins._default = saved


def _check(step: str, result: Any, errors: list[str], ok: Any = 0) -> None:
    if result != ok or errors:
        said = "; ".join(f"E {line}" for line in errors) or "no E line was logged"
        raise AssertionError(f"{step} failed (returned {result!r}): {said}")


def write_dataset(samples: Sequence[Sequence[np.ndarray]], folder: str, data_format: str = "nchw") -> str:
    """A dataset file for ``build(dataset=...)``: one line per sample, one ``.npy`` per model input.

    Dataset ``.npy`` files hold 4-D inputs as NHWC (as images are); ``data_format="nchw"`` samples are
    transposed to it, so they are given in the layout ``inference`` takes.
    """
    lines = []
    for i, sample in enumerate(samples):
        names = [f"sample{i}_input{j}.npy" for j in range(len(sample))]
        for name, array in zip(names, sample):
            array = np.asarray(array)
            if data_format == "nchw" and array.ndim == 4:
                array = array.transpose(0, 2, 3, 1)
            np.save(os.path.join(folder, name), array, allow_pickle=False)
        lines.append(" ".join(names))
    path = os.path.join(folder, "dataset.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def vendor_flow(model_path: str, inputs: Sequence[np.ndarray] | dict[str, np.ndarray], loader: str = "load_onnx",
                quantize: bool = False, dataset: str | Sequence[Sequence[np.ndarray]] | None = None,
                tmp_dir: str | None = None, config: dict | None = None, load_options: dict | None = None,
                via_file: bool = True, registry: Registry | None = None, data_type: str = "float32",
                data_format: str = "nchw") -> list[np.ndarray]:
    """Convert ``model_path`` with ``loader`` (``load_onnx``, ``load_tflite`` ...), build (quantized with
    ``dataset`` when ``quantize``), export to ``tmp_dir/model.rknn``, load that file in a new ``RKNN`` and
    run ``inputs`` in the simulator; returns the outputs.

    ``dataset`` is a dataset file or a list of samples (each a list of arrays, one per input, in
    ``data_format`` like ``inputs``), written as ``.npy`` files into ``tmp_dir``. ``config`` holds ``RKNN.config`` keywords, ``load_options`` the
    loader's keywords besides ``model``. ``via_file=False`` runs the built model without the file round
    trip. ``registry`` replaces the installed plugins (see ``registry_with``). Any step that fails raises
    ``AssertionError`` naming the step and the toolkit's ``E`` lines.
    """
    from rknn.api import RKNN

    feeds = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    with contextlib.ExitStack() as stack:
        if tmp_dir is None:
            tmp_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rknn-flow-"))
        stack.enter_context(using_registry(registry))
        if quantize and dataset is not None and not isinstance(dataset, (str, os.PathLike)):
            dataset = write_dataset(dataset, tmp_dir, data_format)
        rknn = RKNN()
        stack.callback(lambda: rknn.release())
        errors = stack.enter_context(collect_errors())
        _check("config", rknn.config(**(config or {})), errors, ok=None)
        _check(loader, getattr(rknn, loader)(model=model_path, **(load_options or {})), errors)
        _check("build", rknn.build(do_quantization=quantize, dataset=dataset), errors)
        if via_file:
            rknn_path = os.path.join(tmp_dir, "model.rknn")
            _check("export_rknn", rknn.export_rknn(rknn_path), errors)
            rknn.release()
            rknn = RKNN()
            _check("load_rknn", rknn.load_rknn(rknn_path), errors)
        _check("init_runtime", rknn.init_runtime(), errors)
        outputs = rknn.inference(feeds, data_type=data_type, data_format=data_format)
        _check("inference", outputs is not None, errors, ok=True)
    return outputs
