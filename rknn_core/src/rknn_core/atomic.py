"""Write a file so that readers see either the old file or the whole new one, never a part.

Only regular files are written: an existing device, FIFO, socket or folder at the target is refused,
and a symbolic link is written through (its destination is replaced atomically, the link stays).
The new content goes to an unnamed file (``O_TMPFILE``) that is given a name only once it is complete
and synced, just before it is renamed over the target, so a killed export leaves nothing behind. Where
the filesystem has no ``O_TMPFILE`` (or ``/proc`` is missing) a named temporary ``.rknn-<pid>-*.tmp``
is used instead, and the next write into that folder removes those whose process has died.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable

from rknn_core.errors import RknnError

TEMP_PREFIX, TEMP_SUFFIX = ".rknn-", ".tmp"
_TEMP_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-.*{re.escape(TEMP_SUFFIX)}$")
_PROC_FDS = "/proc/self/fd"
# unnamed temporary files need the flag and /proc to name them (linkat through /proc/self/fd)
USE_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir(_PROC_FDS)

_KINDS = ((stat.S_ISDIR, "a folder; give a file name"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def regular_target(path: str) -> str:
    """The file ``path`` names, symbolic links followed; refused unless it is absent or a regular file."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise RknnError(f"cannot write '{path}': folder '{folder}' does not exist")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise RknnError(f"cannot write '{path}': {exc.strerror or exc}") from None
    for test, kind in _KINDS:
        if test(mode):
            shown = path if target == os.path.abspath(path) else f"{path}' (-> '{target}"
            raise RknnError(f"cannot write '{shown}': it is {kind}; only regular files are written")
    if not stat.S_ISREG(mode):
        raise RknnError(f"cannot write '{path}': it is not a regular file; only regular files are written")
    return target


def remove_stale_temps(folder: str) -> list[str]:
    """Delete ``.rknn-<pid>-*.tmp`` files of processes that no longer run (a killed export's); their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match or _alive(int(match.group(1))):
            continue
        full = os.path.join(folder, name)
        try:
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
                removed.append(name)
        except OSError:
            continue  # another process cleaned it up, or we may not: it is only litter
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _temp_name(folder: str) -> str:
    return os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{TEMP_SUFFIX}")


def _open_unnamed(folder: str) -> int | None:
    """A writable unnamed file in ``folder`` (O_TMPFILE), or None where the filesystem has none."""
    if not USE_TMPFILE:
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    except OSError:  # EOPNOTSUPP, EISDIR (old kernels), EINVAL: fall back to a named temporary file
        return None


def _name_unnamed(fd: int, folder: str) -> str:
    """Give the complete unnamed file a temporary name (linkat through /proc/self/fd)."""
    proc = os.open(_PROC_FDS, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        name = _temp_name(folder)
        os.link(str(fd), name, src_dir_fd=proc)  # with a dir fd os.link is linkat(AT_SYMLINK_FOLLOW)
        return name
    finally:
        os.close(proc)


def write_atomic(path: str, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to ``path`` (through symbolic links): all of it, synced, or nothing."""
    target = regular_target(path)
    folder = os.path.dirname(target)
    remove_stale_temps(folder)
    fd = _open_unnamed(folder)
    tmp = None
    try:
        if fd is None:
            fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX, dir=folder)
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    except OSError as exc:
        raise RknnError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:
                tmp = _name_unnamed(f.fileno(), folder)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise RknnError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise
