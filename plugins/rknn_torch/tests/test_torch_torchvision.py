"""torchvision classification architectures and detection backbones (random weights), traced and scripted,
against torch."""

from __future__ import annotations

import pytest
from torch_models import assert_close, fpn_case, load_ref, run_rknn, torchvision_case

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


@pytest.mark.parametrize("mode", ["trace", "script"])
@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_detection_backbone_with_feature_pyramid_matches_torch(backbone, mode):
    """Faster R-CNN's backbones: the FPN's nearest upsampling to the lateral sizes, its extra max pool, and
    (scripted) the list and OrderedDict code around them; one output per pyramid level."""
    folder = fpn_case(backbone, mode, 64)
    inputs, ref = load_ref(folder)
    ours = run_rknn(folder / "model.pt", inputs)
    assert len(ours) == (5 if backbone == "resnet18" else 3)
    assert_close(ours, ref)
