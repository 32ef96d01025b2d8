"""Write a file so that readers see either the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from rknn_core.errors import RknnError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to a temporary file in ``path``'s folder, sync it, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RknnError(f"cannot write '{path}': folder '{folder}' does not exist")
    if os.path.isdir(path):
        raise RknnError(f"cannot write '{path}': it is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rknn-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RknnError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise RknnError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise
