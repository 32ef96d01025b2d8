"""The stable helpers for writing an op's quantized kernel (documented in docs/plugins.md, Quantized kernels).

A quantized kernel is ``quant_kernel(inputs, in_q, out_q, attrs) -> list[ndarray]``: storage integers in
and out, ``in_q``/``out_q`` the tensors' ``QuantParams``. These are the core's own helpers, re-exported
here so a plugin does not import the core's private modules:

- ``lut_kernel(fn)``: an elementwise activation as a lookup table over every input code;
- ``quantized_add(a, b, a_q, b_q, out_q, sign=1)``: a + sign * b with TFLite's integer ADD;
- ``rescale(v, src, dst)``: storage integers of one tensor re-expressed with another's parameters;
- ``centered(v, q, dtype)``: storage minus the zero point, for integer sums (reductions, dot products);
- ``requantize_channels(acc, m, zero_point, qtype, bounds=None, axis=None, bias=None)``: integer
  accumulators times a real multiplier ``m`` (fixed point, per channel along ``axis``) to storage;
- ``quantize(x, q)`` / ``dequantize(v, q)``: real values to storage integers (ties away from zero,
  saturated) and back to float32.
"""

from rknn_core.ops._quant import centered, lut_kernel, quantized_add, requantize_channels, rescale
from rknn_core.quant.params import dequantize, quantize

__all__ = ["centered", "dequantize", "lut_kernel", "quantize", "quantized_add", "requantize_channels", "rescale"]
