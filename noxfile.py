"""Test sessions, one per installable package, plus lint, heavy and exploratory runs.

    nox -s lint onnx op_example tf tflite darknet caffe torch mxnet  # each plugin package in its own virtualenv
    nox -s integration                    # everything installed together (what scripts/test.sh runs)
    nox -s heavy                          # rare, slow cases (marked @pytest.mark.heavy)
    nox -s explore                        # hypothesis with fresh random examples
    nox -s fuzz                           # the fuzz suite with a 10x corpus and more examples
    nox -s wheels nocompiler pythons      # installed from built wheels: numpy 2.x, no C compiler, Python 3.10/3.13
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "onnx", "op_example", "quant_example"]
nox.options.reuse_existing_virtualenvs = True

PINS = "requirements-dev.txt"
# the chip plugins come with the core in every session: the vendor's default target_platform (rk1808) needs one
CORE = ("-e", "rknn_core", "-e", "plugins/targets", "-e", "plugins/targets/rk18xx", "-e", "plugins/targets/rv11xx")
EVERY_PLUGIN = ("-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_op_example", "-e",
                "plugins/examples/rknn_quant_example", "-e", "plugins/rknn_tf", "-e", "plugins/rknn_tflite",
                "-e", "plugins/rknn_darknet", "-e", "plugins/rknn_caffe", "-e", "plugins/rknn_torch",
                "-e", "plugins/rknn_mxnet", "-e", "plugins/rknn_server",
                "-e", "plugins/rknn_gui")


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
    """The third-party op plugin installed beside the core, the ONNX and the TFLite frontends (its TFLite
    custom-op converter runs against ai-edge-litert; the TensorFlow one skips: no tensorflow here)."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/rknn_tflite", "-e", "plugins/examples/rknn_op_example")
    session.run("pytest", "tests/test_custom_ops.py", "tests/test_plugins.py", "tests/test_converters.py",
                "tests/test_op_domains.py", "plugins/examples/rknn_op_example/tests", *session.posargs)


@nox.session
def quant_example(session: nox.Session) -> None:
    """The third-party quantizer plugin installed beside the core and the ONNX frontend."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/examples/rknn_quant_example")
    session.run("pytest", "plugins/examples/rknn_quant_example/tests", "tests/test_plugins.py", *session.posargs)


@nox.session
def chips(session: nox.Session) -> None:
    """The chip target plugins (rknn-target-rk18xx, rknn-target-rv11xx) and the shared NPU model in rknn-targets,
    with the ONNX frontend their tests build models with."""
    _install(session, "-e", "plugins/rknn_onnx")
    session.run("pytest", "plugins/targets", "tests/test_plugin_targets.py", *session.posargs)


@nox.session
def devices(session: nox.Session) -> None:
    """The device agent and transports (rknn-server): emulated agents on loopback, a stand-in adb server,
    the vendor C API against a stand-in library; the ONNX frontend builds the test models."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/rknn_server")
    session.run("pytest", "-n", "2", "plugins/rknn_server/tests", "tests/test_plugin_targets.py", *session.posargs)


@nox.session
def tf(session: nox.Session) -> None:
    """The TensorFlow frontend on its own (it reads .pb files without tensorflow; tensorflow-cpu
    generates the test models and TensorFlow's reference outputs, cached in .cache/models/tf)."""
    _install(session, "-e", "plugins/rknn_tf")
    session.install("tensorflow-cpu==2.21.0")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_tf/tests", *session.posargs)


@nox.session
def darknet(session: nox.Session) -> None:
    """The Darknet frontend on its own (it reads .cfg/.weights itself; no darknet anywhere): OpenCV's
    cv2.dnn, pinned in requirements-dev.txt, is the reference; Debian's public cfgs come from fetch_models."""
    _install(session, "-e", "plugins/rknn_darknet")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_darknet/tests", *session.posargs)


@nox.session
def caffe(session: nox.Session) -> None:
    """The Caffe frontend on its own (it reads .prototxt/.caffemodel itself; no caffe anywhere): OpenCV's
    cv2.dnn, pinned in requirements-dev.txt, is the reference (onnxruntime for the LSTM and Resize cases)."""
    _install(session, "-e", "plugins/rknn_caffe")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_caffe/tests", *session.posargs)


@nox.session
def torch(session: nox.Session) -> None:
    """The PyTorch frontend on its own: core + targets + rknn_torch, with torch==2.13.0 (the CPU wheel, pinned in
    requirements-dev.txt) as the reference and torchvision's architectures as test models."""
    _install(session, "-e", "plugins/rknn_torch")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_torch/tests", *session.posargs)


@nox.session
def mxnet(session: nox.Session) -> None:
    """The MXNet frontend on its own: core + targets + rknn_mxnet, without mxnet (installing the plugin must not
    pull it in). Real mxnet 1.9.1 with numpy 1.23.5, in a virtualenv of its own, writes the reference cases
    (plugins/rknn_mxnet/tests/make_reference.py, cached in .cache/models/mxnet); the plugin's tests compare with them."""
    _install(session, "-e", "plugins/rknn_mxnet")
    listed = session.run("python", "-m", "pip", "list", "--format=freeze", silent=True)
    if any(line.lower().startswith("mxnet==") for line in listed.splitlines()):
        session.error("the mxnet session must not have mxnet installed beside the plugin")
    reference = Path(session.create_tmp()) / "mxnet-venv"
    if not (reference / "bin" / "python").exists():
        session.run("python", "-m", "venv", str(reference))
    python = str(reference / "bin" / "python")
    session.run(python, "-m", "pip", "install", "--quiet", "mxnet==1.9.1", "numpy==1.23.5", external=True)
    session.run(python, "plugins/rknn_mxnet/tests/make_reference.py", external=True)
    session.run("pytest", "-m", "not heavy", "plugins/rknn_mxnet/tests", *session.posargs)


@nox.session
def gui(session: nox.Session) -> None:
    """The visual workbench: core + targets + ONNX frontend + rknn-gui (Starlette, uvicorn); API tests with
    Starlette's TestClient, end-to-end tests with Playwright driving Debian's chromium (they skip without it)."""
    _install(session, "-e", "plugins/rknn_onnx", "-e", "plugins/rknn_gui")
    session.run("pytest", "-m", "not heavy", "plugins/rknn_gui/tests", *session.posargs)


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


FUZZ_TESTS = ("tests/test_fuzz_files.py", "tests/test_fuzz_arguments.py", "tests/test_arguments.py")


@nox.session
def fuzz(session: nox.Session) -> None:
    """The fuzz suite, heavier: 10x the mutation corpus (another seed with RKNN_FUZZ_SEED=n) and 300 fresh
    hypothesis examples per public method, every frontend installed."""
    _install(session, *EVERY_PLUGIN)
    env = {"RKNN_FUZZ_SCALE": "10", "RKNN_FUZZ_EXAMPLES": "300", "HYPOTHESIS_PROFILE": "explore"}
    session.run("pytest", "-n", "2", *FUZZ_TESTS, *session.posargs, env=env)


# ---- Installed from wheels: what `pip install rknn-core rknn-onnx` gives a user -------------------------
WHEEL_SOURCES = ("rknn_core", "plugins/targets", "plugins/targets/rk18xx", "plugins/targets/rv11xx", "plugins/rknn_onnx")
TEST_TOOLS = ("pytest", "pytest-xdist", "hypothesis", "onnxruntime")  # onnxruntime: the tests' reference
NO_BUILD_LEFTOVERS = shutil.ignore_patterns("build", "dist", "*.so", "*.egg-info", "__pycache__")
NO_COMPILER = "WARNING: the compiled kernels of rknn-core (rknn_core._native) could not be built"
FROM_WHEELS = """
import importlib.util, sys, numpy, rknn.api, rknn_core.toolkit, rknn_onnx.plugin, rknn_targets.plugin
modules = (rknn.api, rknn_core.toolkit, rknn_onnx.plugin, rknn_targets.plugin)
stray = [m.__file__ for m in modules if "site-packages" not in m.__file__]
compiled = importlib.util.find_spec("rknn_core._native") is not None
print("python", sys.version.split()[0], "numpy", numpy.__version__, "compiled kernels:", compiled)
sys.exit(f"imported from the source tree, not the wheels: {stray}" if stray else 0)
"""


def _interpreter(version: str) -> str:
    """pyenv's build of ``version`` when it has one (its shims hide the versions not selected), else the name."""
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    return str(found[-1]) if found else version


def _build_wheels(session: nox.Session, env: dict | None = None) -> list[str]:
    """``pip wheel --no-deps`` of the core, the simulator and the ONNX frontend, each from a copy of its
    sources without earlier build output (an old build/ could slip a compiled module in); the wheels."""
    work = Path(session.create_tmp()) / "wheels"
    shutil.rmtree(work, ignore_errors=True)
    for source in WHEEL_SOURCES:
        copy = work / "src" / Path(source).name
        shutil.copytree(source, copy, ignore=NO_BUILD_LEFTOVERS)
        log = session.run("python", "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(work / "dist"), str(copy), env=env,
                          silent=True)
        if env and source == "rknn_core" and NO_COMPILER not in (log or ""):
            session.error(f"the core built without its warning about the missing compiler:\n{log}")
    return sorted(str(w) for w in (work / "dist").glob("*.whl"))


def _test_tree(session: nox.Session) -> Path:
    """tests/ (with the benchmarks, docs and scripts some tests read) copied out of the source tree and with a pytest.ini
    of their own, so that the tests import the installed wheels; the fetched models linked in."""
    root = Path(session.create_tmp()) / "run"
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("tests", "benchmarks", "docs", "scripts"):
        shutil.copytree(folder, root / folder, ignore=NO_BUILD_LEFTOVERS)
    (root / ".cache").symlink_to(Path(".cache").resolve())
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n"
                                     "    heavy: slow cases on real full-size models\n")
    return root


def _from_wheels(session: nox.Session, *pytest_args: str, build_env: dict | None = None) -> None:
    """Build the wheels, install them with their declared dependencies only (+ the test tools) and run the
    vendor flow and ``pytest_args`` from outside the source tree."""
    wheels = _build_wheels(session, build_env)
    core = zipfile.ZipFile(next(w for w in wheels if Path(w).name.startswith("rknn_core"))).namelist()
    if build_env and any(n.startswith("rknn_core/_native.") and n.endswith((".so", ".pyd")) for n in core):
        session.error("the core wheel holds a compiled module although the compiler was missing")
    session.install(*wheels, *TEST_TOOLS)
    session.run("python", "scripts/fetch_models.py")
    root = _test_tree(session)
    with session.chdir(root):
        session.run("python", "-c", FROM_WHEELS)
        session.run("python", "tests/vendor_flow.py", str(root / "flow"))
        session.run("python", "-m", "pytest", *pytest_args, *session.posargs)


@nox.session(reuse_venv=False)
def wheels(session: nox.Session) -> None:
    """The core, the simulator and the ONNX frontend from built wheels with their declared dependencies
    (the newest, so numpy 2.x): the vendor flow and tests/ (tests of plugins not installed here skip)."""
    _from_wheels(session, "-n", "2", "-m", "not heavy", "tests")
    session.run("python", "-c", "import numpy, sys; sys.exit(int(numpy.__version__.split('.')[0]) < 2 and 'numpy 1.x was installed')")


@nox.session(reuse_venv=False)
def nocompiler(session: nox.Session) -> None:
    """`pip install` of the core where the C compiler is missing (CC=/bin/false): the build warns, the wheel
    holds no compiled module, and the vendor flow and the fallback test run on the numpy kernels."""
    _from_wheels(session, "tests/test_native_fallback.py", build_env={"CC": "/bin/false", "CXX": "/bin/false"})


@nox.session(reuse_venv=False)
@nox.parametrize("python", [_interpreter("3.10"), _interpreter("3.13")], ids=["3.10", "3.13"])
def pythons(session: nox.Session) -> None:
    """The wheels session on the oldest and the newest Python available."""
    _from_wheels(session, "-n", "2", "-m", "not heavy", "tests")
