"""Net inputs: the Input layer, the data layers (shape from their parameters) and the NetParameter
``input`` fields. Data layers read their samples from a database at training time; for inference
their first top becomes an input (batch 1) and the label top is dropped."""

from __future__ import annotations

from rknn_caffe.context import Ctx
from rknn_caffe.net import CaffeLayer
from rknn_core.errors import RknnError


def input_layer(ctx: Ctx, layer: CaffeLayer) -> None:
    shapes = [list(s.dim) for s in layer.param.input_param.shape]
    if len(shapes) not in (1, len(layer.tops)):
        raise RknnError(f"input_param has {len(shapes)} shapes for {len(layer.tops)} tops (give 1 or one per top)")
    for k in range(len(layer.tops)):
        ctx.add_input(k, shapes[k if len(shapes) > 1 else 0])


def _image_input(ctx: Ctx, channels: int, height: int, width: int, source: str) -> None:
    """The first top becomes the image input; a second top (the label) is dropped."""
    if not height or not width:
        raise RknnError(f"the input size is unknown: {source}; replace the layer with an Input layer "
                        f"(input_param {{ shape {{ dim: 1 dim: C dim: H dim: W }} }})")
    ctx.add_input(0, (1, channels, height, width))
    for top in ctx.layer.tops[1:]:
        ctx.dropped[top] = f"the label top of data layer '{ctx.layer.name}'"


def data_layer(ctx: Ctx, layer: CaffeLayer) -> None:
    """Data / AnnotatedData: the crop size of transform_param gives H and W; 3 channels (1 with force_gray)."""
    t = layer.param.transform_param
    size = t.crop_size
    _image_input(ctx, 1 if t.force_gray else 3, size, size, "a Data layer reads it from its database and "
                 "transform_param has no crop_size")


def image_data(ctx: Ctx, layer: CaffeLayer) -> None:
    p, t = layer.param.image_data_param, layer.param.transform_param
    height, width = (t.crop_size, t.crop_size) if t.crop_size else (p.new_height, p.new_width)
    _image_input(ctx, 3 if p.is_color else 1, height, width, "image_data_param has no new_height/new_width "
                 "and transform_param no crop_size")


def memory_data(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.memory_data_param
    _image_input(ctx, p.channels or 1, p.height, p.width, "memory_data_param has no height/width")


def net_inputs(net, ctx: Ctx) -> None:
    """The NetParameter's own ``input`` blobs with ``input_shape`` or ``input_dim`` (4 per input)."""
    from rknn_caffe.net import CaffeLayer as Layer

    names = list(net.input)
    if not names:
        return
    if net.input_shape:
        shapes = [list(s.dim) for s in net.input_shape]
    elif net.input_dim:
        dims = list(net.input_dim)
        if len(dims) != 4 * len(names):
            raise RknnError(f"the .prototxt gives {len(dims)} input_dim values for {len(names)} input(s); "
                            f"it needs 4 per input")
        shapes = [dims[i:i + 4] for i in range(0, len(dims), 4)]
    else:
        raise RknnError(f"the .prototxt declares input(s) {names} without input_shape or input_dim")
    if len(shapes) != len(names):
        raise RknnError(f"the .prototxt gives {len(shapes)} input shape(s) for {len(names)} input(s)")
    ctx.layer = Layer("input", "Input", [], names, None)
    for k in range(len(names)):
        ctx.add_input(k, shapes[k])
    ctx.layer = None


CONVERTERS = {"Input": input_layer, "Data": data_layer, "AnnotatedData": data_layer, "ImageData": image_data,
              "MemoryData": memory_data}
