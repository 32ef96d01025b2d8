"""An example quantizer plugin for the rknn toolkit: ``asymmetric_quantized-i8``.

The toolkit finds it through the ``rknn`` entry point ``quant_example`` (see ``pyproject.toml``),
which names :mod:`rknn_quant_example.plugin`.
"""
