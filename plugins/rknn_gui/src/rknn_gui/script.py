"""The equivalent Python script of a session: the same RKNN calls with the same arguments, file
names relative to the workspace (run it there)."""

from __future__ import annotations

from rknn_gui.hybrid import keep_float_code
from rknn_gui.inputs import RESIZE_HELPER, input_code
from rknn_gui.session import EDIT_CFG, Call

RESULTS = {"inference": "outputs", "eval_perf": "perf", "eval_memory": "memory",
           "list_support_target_platform": "platforms"}
HEADER = '''"""What was done in rknn gui, as a script. Run it in the workspace folder."""
import sys

import numpy as np
from PIL import Image
from rknn.api import RKNN


def check(ret, step):
    """Stop at the first failed step (the E line above says why)."""
    if ret is None or (isinstance(ret, int) and ret != 0):
        sys.exit(f"{step} failed")


'''


def render(history: list[Call]) -> str:
    """The script of the steps in ``history``."""
    lines = [HEADER + RESIZE_HELPER, "", "rknn = RKNN()"]
    for index, call in enumerate(history):
        if call.method == EDIT_CFG:
            lines.append(f"# keep {', '.join(call.kwargs['layers'])} in float: step 1's cfg, edited")
            lines.append(keep_float_code(call.kwargs["source"], call.kwargs["target"], call.kwargs["layers"]).rstrip())
            continue
        kwargs = dict(call.kwargs)
        if "inputs" in kwargs and call.method in ("inference", "eval_perf"):
            specs = call.input_specs
            names = []
            for k, name in enumerate(kwargs["inputs"]):
                variable = f"input_{index}_{k}"
                spec = specs[min(k, len(specs) - 1)] if specs else ((), None)
                lines.append(input_code(variable, name, *spec))
                names.append(variable)
            kwargs["inputs"] = _Raw("[" + ", ".join(names) + "]")
        if call.method == "eval_perf" or call.method == "eval_memory":
            kwargs["is_print"] = _Raw("True")
        arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        if call.method == "config":
            lines.append(f"rknn.config({arguments})")
        elif call.method in RESULTS:
            lines.append(f"{RESULTS[call.method]} = rknn.{call.method}({arguments})")
            lines.append(f"check({RESULTS[call.method]}, {call.method!r})")
        else:
            lines.append(f"check(rknn.{call.method}({arguments}), {call.method!r})")
    lines.append("rknn.release()")
    return "\n".join(lines) + "\n"


class _Raw(str):
    """Code written as it is (not quoted) in an argument list."""

    def __repr__(self) -> str:
        return str(self)
