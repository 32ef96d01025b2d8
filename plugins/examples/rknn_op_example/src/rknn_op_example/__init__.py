"""An example op plugin for the rknn toolkit: the ONNX activation ``Mish``.

The toolkit finds it through the ``rknn`` entry point ``op_example`` (see ``pyproject.toml``), which
names :mod:`rknn_op_example.plugin`.
"""
