"""Reference models a test generates once (a framework export plus its outputs) and keeps in a cache."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Callable


def cached_folder(folder: pathlib.Path, build: Callable[[pathlib.Path], None], done: str = "ref.npz") -> pathlib.Path:
    """``folder``, made by ``build(tmp)`` in a temporary sibling and renamed into place when the file
    ``done`` is missing: parallel test workers may build the same model, and one rename wins."""
    folder = pathlib.Path(folder)
    if not (folder / done).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        build(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
