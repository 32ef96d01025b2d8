"""Registers the Darknet frontend (``load_darknet``) and its layer converters with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_darknet.importer import load_darknet  # numpy-only, but imported only when used

    return load_darknet(registry=registry, **kwargs)


@hookimpl
def rknn_converters():
    from rknn_darknet import layers_conv, layers_merge, layers_spatial

    table = {
        "convolutional": layers_conv.convolutional, "connected": layers_conv.connected,
        "maxpool": layers_spatial.maxpool, "avgpool": layers_spatial.avgpool, "upsample": layers_spatial.upsample,
        "reorg": layers_spatial.reorg, "softmax": layers_spatial.softmax, "dropout": layers_spatial.identity,
        "cost": layers_spatial.identity, "route": layers_merge.route, "shortcut": layers_merge.shortcut,
        "scale_channels": layers_merge.scale_channels, "sam": layers_merge.sam, "yolo": layers_merge.detection,
        "region": layers_merge.detection,
    }
    return [Converter("darknet", section, convert, doc=f"Darknet [{section}]") for section, convert in table.items()]


@hookimpl
def rknn_frontends():
    return [Frontend("darknet", "load_darknet", _load,
                     doc="Darknet .cfg + .weights (YOLOv2/v3/v4 and tiny variants, classifiers), NCHW in and out.")]
