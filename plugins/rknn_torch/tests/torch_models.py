"""TorchScript test models and the comparison with torch.

torchvision's architectures (seeded random weights, eval mode) are traced or scripted once and cached
under .cache/models/torch/ with torch's outputs for a seeded input. The torchvision wheel built for
torch 2.13 is a CUDA build whose compiled ops do not load beside the CPU torch; its model constructors
need only the ``torchvision::nms`` / ``qnms`` schemas, which :func:`torchvision_models` declares.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from rknn_core.testing import cached_folder

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0, the CPU wheel)")
pytest.importorskip("rknn_torch", reason="the rknn-torch plugin is not installed")

ROOT = pathlib.Path(__file__).resolve().parents[3]
CACHE = ROOT / ".cache" / "models" / "torch"
VERSION = "v1"  # bump when the generation recipe changes
_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_libraries: list = []  # keeps the declared schemas alive


def torchvision_models():
    """``torchvision.models``; skips the test when torchvision is not installed."""
    try:
        return importlib.import_module("torchvision.models")
    except ImportError:
        pytest.skip("torchvision is not installed (requirements-dev.txt pins torchvision==0.28.0)")
    except RuntimeError:  # its compiled ops did not load: declare the schemas its import registers fakes for
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS:
            library.define(schema)
        _libraries.append(library)
        return importlib.import_module("torchvision.models")


def randomize(net, seed: int):
    """Seeded random weights that keep activations in range: He-normal convolutions and linear layers,
    trained-looking batch-norm statistics, small random biases. Returns the net in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return net.eval()


def save(net, example: Sequence, mode: str, path: pathlib.Path) -> None:
    """Trace (with ``example``; dict outputs allowed) or script ``net`` and save it as TorchScript."""
    with torch.no_grad():
        module = torch.jit.trace(net, tuple(example), strict=False) if mode == "trace" else torch.jit.script(net)
    module.save(str(path))


def torch_outputs(path: pathlib.Path | str, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The saved model's outputs in torch (tuples, lists and dict values flattened, None left out)."""
    module = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in feeds))
    flat: list[np.ndarray] = []

    def walk(v):
        if isinstance(v, dict):
            walk(list(v.values()))
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        elif v is not None:
            flat.append(v.numpy())
    walk(out)
    return flat


def cached(name: str, build: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """The folder of ``name`` (model.pt, ref.npz), made by ``build(folder)`` when missing."""
    return cached_folder(CACHE / f"{name}-{VERSION}", build)


def torchvision_case(arch: str, mode: str, size: int, **kwargs) -> pathlib.Path:
    """A torchvision classifier with random weights (10 classes), traced or scripted, with torch's output."""
    return _case(f"{arch}-{mode}-{size}", lambda: getattr(torchvision_models(), arch)(weights=None, num_classes=10,
                                                                                      **kwargs), mode, size)


def fpn_case(backbone: str, mode: str, size: int) -> pathlib.Path:
    """A torchvision detection backbone with a feature pyramid (random weights), its dict of feature maps."""
    def make():
        torchvision_models()
        from torchvision.models.detection import backbone_utils

        if backbone.startswith("resnet"):
            return backbone_utils.resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=5)
        return backbone_utils.mobilenet_backbone(backbone_name=backbone, weights=None, fpn=True, trainable_layers=6)
    return _case(f"fpn-{backbone}-{mode}-{size}", make, mode, size)


def _case(name: str, make: Callable, mode: str, size: int) -> pathlib.Path:
    def build(folder: pathlib.Path) -> None:
        torch.manual_seed(0)
        net = randomize(make(), seed=1)
        x = np.random.default_rng(2).standard_normal((1, 3, size, size)).astype(np.float32)
        save(net, [torch.from_numpy(x)], mode, folder / "model.pt")
        outputs = torch_outputs(folder / "model.pt", [x])
        np.savez(folder / "ref.npz", in0=x, **{f"out{i}": y for i, y in enumerate(outputs)})
    return cached(name, build)


def load_ref(folder: pathlib.Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(folder / "ref.npz") as ref:
        ins = [ref[k] for k in sorted(ref.files) if k.startswith("in")]
        outs = [ref[f"out{i}"] for i in range(sum(k.startswith("out") for k in ref.files))]
    return ins, outs


def run_rknn(path: pathlib.Path | str, feeds: Sequence[np.ndarray], via_file: bool = False,
             registry=None) -> list[np.ndarray]:
    """The vendor flow on the simulator, float: load_pytorch (sizes from the feeds, without the batch axis),
    build, init_runtime, inference on NCHW float32 data."""
    from rknn_core.testing import vendor_flow

    sizes = [list(x.shape[1:]) for x in feeds]
    return vendor_flow(str(path), list(feeds), loader="load_pytorch", load_options={"input_size_list": sizes},
                       via_file=via_file, registry=registry)


def assert_close(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], rel: float = 1e-4) -> None:
    """Same count and shapes; values within ``rel`` of each reference's largest magnitude."""
    assert len(ours) == len(ref), (len(ours), len(ref))
    for a, b in zip(ours, ref):
        assert a.shape == b.shape, (a.shape, b.shape)
        scale = max(float(np.abs(b).max(initial=0.0)), 1e-6)
        np.testing.assert_allclose(a, b, rtol=rel, atol=rel * scale)


def check_module(net, feeds: Sequence[np.ndarray], mode: str, folder: pathlib.Path, rel: float = 1e-4,
                 registry=None) -> list[np.ndarray]:
    """Save ``net`` (eval mode) traced or scripted into ``folder``, convert it and compare with torch."""
    path = folder / f"model_{mode}.pt"
    save(net.eval(), [torch.from_numpy(x) for x in feeds], mode, path)
    ours = run_rknn(path, feeds, registry=registry)
    assert_close(ours, torch_outputs(path, feeds), rel)
    return ours
