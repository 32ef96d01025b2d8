"""``python -m rknn_gui``: the same as ``rknn gui``."""

import sys

from rknn_gui.cli import main

sys.exit(main())
