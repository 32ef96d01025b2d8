"""torchvision classification architectures (random weights), traced and scripted, against torch."""

from __future__ import annotations

import pytest
from torch_models import assert_close, load_ref, run_rknn, torchvision_case

# architecture -> (reduced input size for the default run, constructor keywords)
ARCHITECTURES = {
    "resnet18": (32, {}),
    "mobilenet_v2": (32, {}),
    "mobilenet_v3_small": (32, {}),
    "squeezenet1_1": (48, {}),
    "shufflenet_v2_x1_0": (32, {}),
    "densenet121": (32, {}),
    "googlenet": (32, {"aux_logits": False, "init_weights": False}),
    "efficientnet_b0": (32, {}),
}
FULL_SIZE = ("densenet121", "googlenet", "efficientnet_b0")  # also at 224 x 224 in the heavy run


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_torchvision_architecture_matches_torch(arch, mode):
    size, kwargs = ARCHITECTURES[arch]
    folder = torchvision_case(arch, mode, size, **kwargs)
    inputs, ref = load_ref(folder)
    ours = run_rknn(folder / "model.pt", inputs)
    assert ours[0].shape == (1, 10)
    assert_close(ours, ref)


@pytest.mark.heavy
@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("arch", FULL_SIZE)
def test_torchvision_architecture_at_224_matches_torch(arch, mode):
    folder = torchvision_case(arch, mode, 224, **ARCHITECTURES[arch][1])
    inputs, ref = load_ref(folder)
    assert_close(run_rknn(folder / "model.pt", inputs), ref)
