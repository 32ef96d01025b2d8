"""The GUI registers no toolkit records: its entry point only makes ``rknn plugins`` list it.
It serves the ``rknn gui`` command (rknn_core.cli dispatches to :func:`rknn_gui.cli.main`)."""

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with
