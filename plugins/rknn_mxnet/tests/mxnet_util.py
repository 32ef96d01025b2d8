"""Test helpers: write symbol JSON and .params files without mxnet, run the vendor flow, find the cached
MXNet reference cases (written by make_reference.py in the mxnet virtual environment).

The .params writer is the tests' own, written from the format description in ``rknn_mxnet.params``; the
cases of ``formats/`` (written by real mxnet) check the reader independently of it.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from rknn_core.testing import using_registry
from rknn_mxnet.params import DTYPES, LIST_MAGIC, V1_MAGIC, V2_MAGIC, V3_MAGIC

REPO = pathlib.Path(__file__).resolve().parents[3]
CACHE = pathlib.Path(os.environ.get("RKNN_MXNET_CASES", REPO / ".cache" / "models" / "mxnet"))
FLAGS = {np.dtype(t): flag for flag, t in DTYPES.items()}


def _array(value: np.ndarray, version: str) -> bytes:
    value = np.asarray(value)
    flag = struct.pack("<i", FLAGS[value.dtype])
    context = struct.pack("<ii", 1, 0)  # cpu(0)
    if version == "legacy":  # before V1: uint32 ndim, uint32 sizes
        head = struct.pack(f"<I{value.ndim}I", value.ndim, *value.shape)
    else:
        shape = struct.pack(f"<{'i' if version == 'v3' else 'I'}{value.ndim}q", value.ndim, *value.shape)
        magic = {"v1": V1_MAGIC, "v2": V2_MAGIC, "v3": V3_MAGIC}[version]
        head = struct.pack("<I", magic) + (b"" if version == "v1" else struct.pack("<i", 0)) + shape
    return head + context + flag + value.astype(value.dtype.newbyteorder("<")).tobytes()


def params_bytes(arrays: Mapping[str, np.ndarray], version: str = "v2") -> bytes:
    """An NDArray list file (``mx.nd.save`` of a dict) in the given array version: v1, v2, v3 or legacy."""
    out = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    out += [_array(v, version) for v in arrays.values()]
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode()
        out.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(out)


def write_params(path: pathlib.Path, arrays: Mapping[str, np.ndarray], version: str = "v2") -> str:
    path.write_bytes(params_bytes(arrays, version))
    return str(path)


def mx_attr(value) -> str:
    """A Python value as MXNet writes attributes: ``(3, 3)``, ``True``, ``0.25``."""
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(mx_attr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


class SymbolWriter:
    """Builds a symbol JSON by hand, as ``Symbol.save`` lays it out."""

    def __init__(self):
        self.nodes: list[dict] = []

    def var(self, name: str, **annotations) -> int:
        self.nodes.append({"op": "null", "name": name, "inputs": [],
                           **({"attrs": {f"__{k}__": mx_attr(v) for k, v in annotations.items()}} if annotations else {})})
        return len(self.nodes) - 1

    def op(self, op: str, name: str, inputs: Sequence[int | tuple[int, int]], **attrs) -> int:
        entries = [[i, 0, 0] if isinstance(i, int) else [i[0], i[1], 0] for i in inputs]
        self.nodes.append({"op": op, "name": name, "attrs": {k: mx_attr(v) for k, v in attrs.items()},
                           "inputs": entries})
        return len(self.nodes) - 1

    def document(self, heads: Sequence[int | tuple[int, int]]) -> dict:
        return {"nodes": self.nodes, "arg_nodes": [i for i, n in enumerate(self.nodes) if n["op"] == "null"],
                "heads": [[h, 0, 0] if isinstance(h, int) else [h[0], h[1], 0] for h in heads],
                "attrs": {"mxnet_version": ["int", 10901]}}

    def save(self, path: pathlib.Path, heads: Sequence[int | tuple[int, int]]) -> str:
        path.write_text(json.dumps(self.document(heads), indent=2))
        return str(path)


def run_ours(symbol: str, params: str, inputs: Sequence[np.ndarray], sizes: list[list[int]], tmp_dir: str,
             registry=None, via_file: bool = True) -> list[np.ndarray]:
    """The float vendor flow: load_mxnet, build, export_rknn + load_rknn (``via_file``), inference (NCHW)."""
    from rknn.api import RKNN

    with using_registry(registry):
        rknn = RKNN()
        assert rknn.load_mxnet(symbol, params, sizes) == 0, "load_mxnet failed"
        assert rknn.build(do_quantization=False) == 0, "build failed"
        if via_file:
            path = os.path.join(tmp_dir, "model.rknn")
            assert rknn.export_rknn(path) == 0, "export_rknn failed"
            rknn.release()
            rknn = RKNN()
            assert rknn.load_rknn(path) == 0, "load_rknn failed"
        assert rknn.init_runtime() == 0, "init_runtime failed"
        outputs = rknn.inference(list(inputs), data_type="float32", data_format="nchw")
        rknn.release()
    assert outputs is not None, "inference failed"
    return outputs


def assert_relative(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], rel: float = 1e-4) -> None:
    """Same count and shapes; each output within ``rel`` of the reference's largest magnitude."""
    assert len(ours) == len(ref), f"{len(ours)} outputs, the reference has {len(ref)}"
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape, f"output {i}: shape {a.shape} != {b.shape}"
        scale = max(float(np.abs(b).max(initial=0.0)), 1e-6)
        np.testing.assert_allclose(a, b, rtol=rel, atol=rel * scale, err_msg=f"output {i}")


def npz_list(path: pathlib.Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def reference_case(name: str) -> tuple[pathlib.Path, list[list[int]]]:
    """The folder of a cached MXNet case and its input_size_list; skips when the cache lacks it."""
    folder = CACHE / name
    if not (folder / "case.json").exists():
        pytest.skip(f"MXNet reference case '{name}' is not in {CACHE}: run scripts/setup.sh (or "
                    f".cache/mxnet-venv/bin/python plugins/rknn_mxnet/tests/make_reference.py) to make it with real "
                    f"mxnet")
    return folder, json.loads((folder / "case.json").read_text())["input_size_list"]
