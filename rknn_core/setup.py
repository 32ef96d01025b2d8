"""Builds the compiled kernels; everything else is in pyproject.toml.

The extension is optional: without a working C compiler the build prints a warning and the package
installs anyway, running on its numpy kernels (rknn_core.native_numpy).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

SOURCES = ["src/rknn_core/_native.c", "src/rknn_core/native/pool.c", "src/rknn_core/native/gemm.c",
           "src/rknn_core/native/depthwise.c", "src/rknn_core/native/post.c", "src/rknn_core/native/qgemm.c",
           "src/rknn_core/native/maxpool.c", "src/rknn_core/native/bytes.c", "src/rknn_core/native/pwdw.c"]
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)
WARNING = """
WARNING: the compiled kernels of rknn-core (rknn_core._native) could not be built:
    {error}
rknn-core is installed without them and runs on its numpy kernels: same results, a much slower
simulator. Install a C compiler (e.g. apt-get install gcc python3-dev) and reinstall to get them.
"""


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile (no compiler, compile error) into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as error:
            print(WARNING.format(error=error))

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as error:
            print(WARNING.format(error=error))


setup(ext_modules=[Extension("rknn_core._native", SOURCES, depends=["src/rknn_core/native/pool.h",
                                                                     "src/rknn_core/native/gemm.h",
                                                                     "src/rknn_core/native/depthwise.h",
                                                                     "src/rknn_core/native/post.h",
                                                                     "src/rknn_core/native/qgemm.h",
                                                                     "src/rknn_core/native/maxpool.h",
                                                                     "src/rknn_core/native/bytes.h",
                                                                     "src/rknn_core/native/clones.h",
                                                                     "src/rknn_core/native/pwdw.h"],
                             extra_compile_args=["-O3", "-std=gnu11"], extra_link_args=["-pthread"])],
      cmdclass={"build_ext": OptionalBuildExt})
