"""Each section type on small cfgs, in the genuine .weights format, against OpenCV's darknet reader
(or, where OpenCV departs from darknet, against darknet's formula on OpenCV's own intermediate maps)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from darknet_util import assert_matches_opencv, opencv_outputs, ours, random_input, write_model

cv2 = pytest.importorskip("cv2")

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"


def conv(filters: int = 8, activation: str = "leaky", size: int = 3, extra: str = "pad=1\nbatch_normalize=1\n") -> str:
    return f"[convolutional]\nfilters={filters}\nsize={size}\nstride=1\n{extra}activation={activation}\n"


CASES = {
    **{f"activation_{a}": conv(activation=a) for a in ("leaky", "relu", "tanh", "mish", "swish", "logistic", "linear")},
    "conv_bias_no_bn": conv(extra="pad=1\n") + conv(4, "linear", 1, extra=""),
    "conv_groups": conv() + conv(8, "linear", extra="pad=1\ngroups=4\n"),
    "conv_depthwise_stride2": conv() + "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\ngroups=8\nactivation=leaky\n",
    "conv_padding_key": "[convolutional]\nfilters=4\nsize=3\nstride=2\npadding=2\nactivation=linear\n",
    "conv_no_padding": "[convolutional]\nfilters=4\nsize=5\nstride=1\nactivation=linear\n",
    "maxpool_2_stride_1_same": conv() + "[maxpool]\nsize=2\nstride=1\n",
    "maxpool_3_stride_2": conv() + "[maxpool]\nsize=3\nstride=2\n",
    "maxpool_5_padding_4": conv() + "[maxpool]\nsize=5\nstride=1\npadding=4\n",
    "maxpool_odd_input": conv() + "[maxpool]\nsize=2\nstride=2\n" * 3,
    "avgpool_softmax": conv() + "[avgpool]\n[softmax]\ngroups=1\n",
    "route_concat": conv() + conv(4) + "[route]\nlayers=-1,-2\n" + conv(4),
    "route_absolute_index": conv() + conv(4) + "[route]\nlayers=0\n" + conv(4),
    "route_group": conv() + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + conv(4) + "[route]\nlayers=-1,-2\n",
    "shortcut": conv() + conv() + "[shortcut]\nfrom=-2\nactivation=leaky\n",
    "shortcut_fewer_channels": conv() + conv(4) + "[shortcut]\nfrom=-2\n",
    "shortcut_more_channels": conv(4) + conv(8) + "[shortcut]\nfrom=-2\n",
    "scale_channels": conv() + "[avgpool]\n" + conv(8, "logistic", 1, "") + "[scale_channels]\nfrom=-3\n",
    "sam": conv() + conv(8, "logistic") + "[sam]\nfrom=-2\n",
    "upsample": conv() + "[upsample]\nstride=2\n",
    "reorg": conv() + "[reorg]\nstride=2\n",
    "connected": conv() + "[maxpool]\nsize=2\nstride=2\n[connected]\noutput=10\nactivation=leaky\n",
    "dropout": conv() + "[dropout]\nprobability=.5\n" + conv(4, "linear", 1, ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_opencv(case, tmp_path):
    cfg, weights = write_model(tmp_path, NET + CASES[case])
    assert_matches_opencv(cfg, weights, tmp_path)


def test_seen_as_int32_in_old_headers(tmp_path):
    """Version 0.1 files store ``seen`` in 4 bytes, 0.2 and later in 8: both read like OpenCV reads them."""
    text = NET + conv() + conv(4, "linear", 1, "")
    cfg, old = write_model(tmp_path, text, "old", version=(0, 1, 0))
    _, new = write_model(tmp_path, text, "new", version=(0, 2, 5))
    assert os.path.getsize(new) - os.path.getsize(old) == 4
    assert_matches_opencv(cfg, old, tmp_path)


def test_missing_activation_is_darknet_logistic(tmp_path):
    """Darknet's default activation of a convolutional layer is logistic (OpenCV assumes linear)."""
    cfg, weights = write_model(tmp_path, NET + "[convolutional]\nfilters=4\nsize=1\n", "plain")
    explicit = tmp_path / "explicit.cfg"
    explicit.write_text(NET + "[convolutional]\nfilters=4\nsize=1\nactivation=logistic\n")
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    (want,) = opencv_outputs(str(explicit), weights, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_route_groups_over_several_layers(tmp_path):
    """With several layers, darknet takes part ``group_id`` of each one (OpenCV slices the concatenation):
    compared with OpenCV running the same parts as single-layer grouped routes."""
    body = conv() + conv()
    cfg, weights = write_model(tmp_path, NET + body + "[route]\nlayers=-1,-2\ngroups=2\ngroup_id=1\n", "multi")
    single = tmp_path / "single.cfg"
    single.write_text(NET + body + "[route]\nlayers=1\ngroups=2\ngroup_id=1\n[route]\nlayers=0\ngroups=2\ngroup_id=1\n"
                      "[route]\nlayers=2,3\n")
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    (want,) = opencv_outputs(str(single), weights, x)
    assert got.shape == (1, 8, 16, 16)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _darknet_tail(weights: str, count: int) -> np.ndarray:
    return np.fromfile(weights, np.float32)[-count:]


@pytest.mark.parametrize("kind, norm", [("per_feature", "softmax"), ("per_channel", "relu"), ("per_feature", "none")])
def test_weighted_shortcut(kind, norm, tmp_path):
    """A weighted shortcut (its weights at the end of the file) against darknet's formula applied to OpenCV's
    maps of the two inputs (OpenCV itself ignores the weights)."""
    text = NET + conv() + conv() + f"[shortcut]\nfrom=-2\nweights_type={kind}\nweights_normalization={norm}\n"
    cfg, weights = write_model(tmp_path, text)
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setInput(x)
    previous, earlier = net.forward(["leaky_2", "leaky_1"])
    w = _darknet_tail(weights, 2 if kind == "per_feature" else 16).reshape(2, -1).astype(np.float64)
    if norm == "relu":
        w = np.maximum(w, 0) / (1e-4 + np.maximum(w, 0).sum(0))
    elif norm == "softmax":
        w = np.exp(w - w.max(0)) / (1e-4 + np.exp(w - w.max(0)).sum(0))
    w = np.broadcast_to(w, (2, 8)).reshape(2, 1, 8, 1, 1)
    np.testing.assert_allclose(got, w[0] * previous + w[1] * earlier, rtol=1e-4, atol=1e-5)


def test_connected_with_batch_norm(tmp_path):
    """``[connected]`` stores biases, weights, then the batch-norm arrays (OpenCV reads them in the
    convolutional order), so it is checked against darknet's formula on OpenCV's flattened input."""
    cfg, weights = write_model(tmp_path, NET + conv() + "[connected]\noutput=10\nbatch_normalize=1\nactivation=linear\n")
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setInput(x)
    features = net.forward("leaky_1").reshape(-1).astype(np.float64)
    tail = _darknet_tail(weights, 10 + 10 * features.size + 30).astype(np.float64)
    biases, w = tail[:10], tail[10:10 + 10 * features.size].reshape(10, -1)
    scales, mean, var = tail[-30:].reshape(3, 10)
    want = (w @ features - mean) / np.sqrt(var + 1e-6) * scales + biases
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-4, atol=1e-5)


def _opencv_maps(cfg: str, weights: str, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setInput(x)
    return [np.asarray(m) for m in net.forward(names)]


def test_shortcut_from_a_larger_map(tmp_path):
    """ResNet's downsampling shortcut (Debian's resnet*.cfg): darknet samples the larger map with the size
    ratio as stride and zero-pads the channels; OpenCV cannot load it, so darknet's formula on OpenCV's maps
    of the same layers without the shortcut is the reference."""
    body = NET + conv() + "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    cfg, weights = write_model(tmp_path, body + "[shortcut]\nfrom=-2\nactivation=leaky\n")
    plain = tmp_path / "plain.cfg"
    plain.write_text(body)
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    earlier, previous = _opencv_maps(str(plain), weights, x, ["leaky_1", "leaky_2"])
    total = previous.copy()
    total[:, :8] += earlier[:, :, ::2, ::2]
    np.testing.assert_allclose(got, np.where(total > 0, total, 0.1 * total), rtol=1e-4, atol=1e-5)


def test_softmax_temperature(tmp_path):
    """``temperature`` divides the input (Debian's cifar.test.cfg uses 3; OpenCV ignores it)."""
    body = NET + conv() + "[avgpool]\n"
    cfg, weights = write_model(tmp_path, body + "[softmax]\ntemperature=3\n")
    x = random_input(cfg)
    (got,) = ours(cfg, weights, x, tmp_path)
    (pooled,) = _opencv_maps(cfg, weights, x, ["avgpool_1"])
    e = np.exp(pooled.astype(np.float64) / 3)
    np.testing.assert_allclose(got, e / e.sum(), rtol=1e-4, atol=1e-6)
