"""rknn gui: the visual workbench. A local web page (Starlette + plain JavaScript) that runs every
toolkit step through the ``RKNN`` facade and draws the model graph, modelled layer times and
quantization errors. Start it with ``rknn gui`` in the folder holding your models."""
