"""Test sessions, one per installable package, plus lint, heavy and exploratory runs.

    nox -s lint onnx op_example tf tflite # each plugin package in its own virtualenv
    nox -s integration                    # everything installed together (what scripts/test.sh runs)
    nox -s heavy                          # rare, slow cases (marked @pytest.mark.heavy)
    nox -s explore                        # hypothesis with fresh random examples
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "onnx", "op_example", "quant_example"]
nox.options.reuse_existing_virtualenvs = True

PINS = "requirements-dev.txt"
CORE = ("-e", "rknn_core", "-e", "plugins/targets")
EVERY_PLUGIN = ("-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_op_example", "-e",
                "plugins/examples/rknn_quant_example", "-e", "plugins/rknn_tf", "-e", "plugins/rknn_tflite")


def _install(session: nox.Session, *packages: str) -> None:
    session.install("-r", PINS)
    session.install("--no-deps", "--no-build-isolation", *CORE, *packages)
    session.run("python", "scripts/fetch_models.py")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def onnx(session: nox.Session) -> None:
    """The core, the simulator and the ONNX frontend: ops, passes, real models, file format, the API
    (tests of the example op plugin skip: it is not installed here)."""
    _install(session, "-e", "plugins/rknn_onnx")
    session.run("pytest", "-n", "2", "-m", "not heavy", "tests", *session.posargs)


@nox.session
def tflite(session: nox.Session) -> None:
    """The TFLite frontend on its own: core + targets + rknn_tflite with ai-edge-litert as the reference
    (no tensorflow); installing the plugin must not pull tensorflow in."""
    _install(session, "-e", "plugins/rknn_tflite")
    session.install("ai-edge-litert==2.3.0")
    listed = session.run("python", "-m", "pip", "list", "--format=freeze", silent=True)
    if any(line.lower().startswith(("tensorflow==", "tensorflow-cpu==")) for line in listed.splitlines()):
        session.error("the tflite session must not have tensorflow installed")
    session.run("pytest", "plugins/rknn_tflite/tests", *session.posargs)


@nox.session
def op_example(session: nox.Session) -> None:
    """The third-party op plugin installed beside the core and the ONNX frontend."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_op_example")
    session.run("pytest", "tests/test_custom_ops.py", "tests/test_plugins.py", *session.posargs)


@nox.session
def quant_example(session: nox.Session) -> None:
    """The third-party quantizer plugin installed beside the core and the ONNX frontend."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_quant_example")
    session.run("pytest", "plugins/examples/rknn_quant_example/tests", "tests/test_plugins.py", *session.posargs)


@nox.session
def tf(session: nox.Session) -> None:
    """The TensorFlow frontend on its own (it reads .pb files without tensorflow; tensorflow-cpu
    generates the test models and TensorFlow's reference outputs, cached in .cache/models/tf)."""
    _install(session, "-e", "plugins/rknn_tf")
    session.install("tensorflow-cpu==2.21.0")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_tf/tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    _install(session, *EVERY_PLUGIN)
    session.install("tensorflow-cpu==2.21.0")
    session.run("pytest", "-n", "2", "-m", "not heavy", *session.posargs)


@nox.session
def heavy(session: nox.Session) -> None:
    _install(session, *EVERY_PLUGIN)
    session.install("tensorflow-cpu==2.21.0")
    session.run("pytest", "-m", "heavy", *session.posargs)


@nox.session
def explore(session: nox.Session) -> None:
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_op_example")
    session.run("pytest", "-n", "2", "-m", "not heavy", "tests", *session.posargs, env={"HYPOTHESIS_PROFILE": "explore"})
