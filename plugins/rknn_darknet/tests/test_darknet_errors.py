"""Bad files give an ``E`` line naming the layer, its line in the .cfg and the problem; a plugin adds a
section type through the ``rknn_converters`` hook; the cfg parser keeps darknet's reading rules."""

from __future__ import annotations

import os

import numpy as np
import pytest
from darknet_util import ours, random_input, write_model

from rknn.api import RKNN
from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter
from rknn_core.testing import registry_with
from rknn_darknet.cfg import parse_cfg

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"
CONV = "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"


def _load_error(cfg: str, weights: str, capsys) -> str:
    rknn = RKNN()
    assert rknn.load_darknet(model=cfg, weight=weights) == -1
    err = capsys.readouterr().err
    rknn.release()
    assert "Traceback" not in err
    return err


def test_parser_reads_comments_whitespace_aliases_and_lines():
    text = "# a comment\n[net]\n width = 32 \nheight=32\n; another\nchannels=3\n\n[conv]\nfilters = 4\n" \
           "size=1\n[max]\n[route]\nlayers = -1, -2\n"
    net, layers = parse_cfg(text, "x.cfg")
    assert net.int("width") == 32 and net.int("channels") == 3
    assert [(s.type, s.index, s.line) for s in layers] == [("convolutional", 0, 8), ("maxpool", 1, 11), ("route", 2, 12)]
    assert layers[0].int("filters") == 4 and layers[2].ints("layers") == [-1, -2]
    assert layers[1].int("size", 2) == 2  # a default when the option is absent


@pytest.mark.parametrize("text, expected", [
    ("width=3\n[net]\n", "line 1 of 'x.cfg': option 'width=3' comes before the first [section]"),
    ("[convolutional]\nfilters=1\n", "must start with a [net] section, not section [convolutional] (line 1 of 'x.cfg'"),
    ("[net]\nwidth=3\n[convolutional]\nfilters\n", "line 4 of 'x.cfg' in layer 0 [convolutional] (line 3 of 'x.cfg'): "
                                                   "'filters' is not a key=value option"),
    ("[net\n", "line 1 of 'x.cfg': '[net' is not a [section] header"),
    ("[net]\nwidth=3\n", "has a [net] section but no layers"),
])
def test_parser_errors_name_the_line(text, expected):
    with pytest.raises(RknnError) as info:
        parse_cfg(text, "x.cfg")
    assert expected in str(info.value)


@pytest.mark.parametrize("body, expected", [
    (CONV + "[convolutional]\nfilters=eight\nsize=1\n",
     ["layer 1 [convolutional] (line 12 of 'model.cfg')", "option 'filters' on line 13", "'filters=eight' is not an integer"]),
    (CONV + "[route]\nlayers=-5\n", ["layer 1 [route] (line 12", "refers to layer -5 (layer -4)", "layers 0..0"]),
    (CONV + "[convolutional]\nfilters=6\nsize=1\ngroups=4\nactivation=linear\n",
     ["layer 1 [convolutional]", "groups=4 must divide the 8 input channels and filters=6"]),
    (CONV + "[convolutional]\nfilters=4\nsize=1\nactivation=gelu\n",
     ["layer 1 [convolutional]", "option 'activation' on line 15", "activation 'gelu' is not supported"]),
    (CONV + "[maxpool]\nsize=2\nstride=2\n" + "[route]\nlayers=-1,-2\n",
     ["layer 2 [route] (line 15 of 'model.cfg'), option 'layers' on line 16", "cannot concatenate maps of different sizes: 8x8x8, 8x16x16"]),
    (CONV + "[local]\nfilters=3\n[crop]\n", ["layer 1 [local] (line 12 of 'model.cfg')", "layer 2 [crop] (line 14",
                                             "Converter('darknet', 'local', ...)"]),
    (CONV + "[convolutional]\nfilters=4\nsize=1\nflipped=1\n", ["layer 1 [convolutional]", "'flipped=1' is not supported"]),
    (CONV + "[yolo]\nmask=0,1,2\nclasses=80\nnum=6\n",
     ["layer 1 [yolo] (line 12", "its input has 8 channels, but 3 anchors with 80 classes need 255"]),
])
def test_cfg_errors_name_layer_line_and_problem(body, expected, tmp_path, capsys):
    cfg = tmp_path / "model.cfg"
    cfg.write_text(NET + body)
    _, weights = write_model(tmp_path, NET + CONV, "good")
    err = _load_error(str(cfg), weights, capsys)
    for part in expected:
        assert part in err


def test_short_weights_name_the_layer_and_both_sizes(tmp_path, capsys):
    cfg, weights = write_model(tmp_path, NET + CONV + CONV + "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n")
    size = os.path.getsize(weights)
    cut = tmp_path / "short.weights"
    cut.write_bytes(open(weights, "rb").read()[:20 + 4 * (8 * 4 + 8 * 27 + 8 * 4 + 100)])  # into layer 1's weights
    err = _load_error(cfg, str(cut), capsys)
    assert f"holds {os.path.getsize(cut)} bytes but the layers need {size}" in err
    assert "runs out in layer 1 [convolutional] (line 12 of 'model.cfg') (weights: 576 floats" in err


def test_long_weights_name_both_sizes(tmp_path, capsys):
    cfg, weights = write_model(tmp_path, NET + CONV)
    size = os.path.getsize(weights)
    with open(weights, "ab") as fh:
        fh.write(np.zeros(3, np.float32).tobytes())
    err = _load_error(cfg, weights, capsys)
    assert f"too long for 'model.cfg': the file holds {size + 12} bytes but the layers need only {size} (12 bytes" in err


def test_missing_files_are_named(tmp_path, capsys):
    cfg, weights = write_model(tmp_path, NET + CONV)
    assert "darknet model 'nope.cfg' does not exist" in _load_error("nope.cfg", weights, capsys)
    assert f"darknet weights '{tmp_path}/w.weights' do not exist" in _load_error(cfg, str(tmp_path / "w.weights"), capsys)


class HalvePlugin:
    """A third-party section type ``[halve]``: the previous layer times 0.5."""

    @hookimpl
    def rknn_converters(self):
        def halve(ctx, section):
            return ctx.emit("Mul", [ctx.input(), ctx.const("half", np.asarray(0.5, np.float32))])

        return [Converter("darknet", "halve", halve, doc="Darknet [halve]")]


def test_a_plugin_adds_a_section_type(tmp_path):
    registry = registry_with(HalvePlugin(), name="halve")
    cfg, weights = write_model(tmp_path, NET + CONV, "plain")
    halved = tmp_path / "halved.cfg"
    halved.write_text(NET + CONV + "[halve]\n")
    x = random_input(cfg)
    (plain,) = ours(cfg, weights, x, tmp_path)
    (half,) = ours(str(halved), weights, x, tmp_path, registry=registry)
    np.testing.assert_allclose(half, 0.5 * plain, rtol=1e-6)
    with pytest.raises(AssertionError, match="halve"):  # without the plugin the section is unknown
        ours(str(halved), weights, x, tmp_path)
