"""The workspace: the one folder the GUI reads and writes. Every path from the page is resolved
(symbolic links followed) and refused when it lands outside the folder."""

from __future__ import annotations

import os
from pathlib import Path

from rknn_gui.errors import GuiError

MAX_LISTED = 2000  # files listed for the pickers
MAX_DEPTH = 4
MAX_UPLOAD = 1 << 30  # bytes


class Workspace:
    """A folder and the paths inside it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise GuiError(f"workspace '{root}' is not a folder")

    def resolve(self, name: str, must_exist: bool = False) -> Path:
        """The real path of ``name`` (relative to the workspace, or absolute inside it)."""
        if not isinstance(name, str) or not name.strip():
            raise GuiError("a file name is needed here")
        if "\x00" in name:
            raise GuiError(f"'{name!r}' is not a file name")
        real = (self.root / name).resolve(strict=False)  # an absolute name replaces the root
        if real != self.root and self.root not in real.parents:
            raise GuiError(f"'{name}' is outside the workspace '{self.root}' (a symbolic link out of it counts too); "
                           f"the GUI reads and writes only there")
        if must_exist and not real.exists():
            raise GuiError(f"'{name}' does not exist in the workspace")
        return real

    def relative(self, name: str, must_exist: bool = False) -> str:
        """``name`` as a workspace-relative POSIX path (how the equivalent script names it)."""
        real = self.resolve(name, must_exist)
        return real.relative_to(self.root).as_posix() if real != self.root else "."

    def files(self) -> list[str]:
        """Workspace-relative names of the files, hidden folders left out, at most MAX_LISTED."""
        found: list[str] = []
        for folder, dirs, names in os.walk(self.root):
            depth = len(Path(folder).relative_to(self.root).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                if self._inside(path):
                    found.append(path.relative_to(self.root).as_posix())
                if len(found) >= MAX_LISTED:
                    return found
        return found

    def _inside(self, path: Path) -> bool:
        real = path.resolve()
        return self.root in real.parents

    def write(self, name: str, data: bytes) -> str:
        """Write an uploaded file; returns its workspace-relative name."""
        if len(data) > MAX_UPLOAD:
            raise GuiError(f"'{name}' is larger than {MAX_UPLOAD >> 20} MiB")
        real = self.resolve(name)
        if real.is_dir():
            raise GuiError(f"'{name}' is a folder")
        real.parent.mkdir(parents=True, exist_ok=True)
        temporary = real.with_name(f".{real.name}.upload")
        temporary.write_bytes(data)
        os.replace(temporary, real)
        return real.relative_to(self.root).as_posix()
