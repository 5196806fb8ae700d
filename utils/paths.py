"""Small checks on the files and folders an experiment writes."""

import os
import stat
from pathlib import Path

from .params import FILE_INSIDE

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the repository: models/, experiments/, utils/


def writable(path):
    """Whether ``path`` (a file or folder) may be written: the OS allows it and its owner-write bit is set (so a
    file or folder made read-only is respected even by a superuser, for whom the OS allows everything)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    access = os.W_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)
    return os.access(path, access) and bool(mode & stat.S_IWUSR)


def nearest_existing(path):
    """``path`` or its nearest existing parent folder."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def inside_name(value, what):
    """``value`` checked as a file name relative to a folder the experiment names (its declaration,
    :data:`utils.params.FILE_INSIDE`: neither an absolute path nor one with a '..' part).

    Raises:
        UserError: naming ``what`` and the value.
    """
    return FILE_INSIDE.check(value, what)


def real_inside(folder, path, what, hint=None):
    """``path`` when its real location (every symlink on the way resolved) is inside the real ``folder``.

    A file or sub-folder that is a symlink pointing out of the folder is refused, so nothing is read, written or
    deleted through it; a symlink loop is refused too. One line each, naming the path and where it leads.

    Raises:
        UserError: naming ``what``, the path and its real location.
    """
    from .errors import UserError

    path = Path(path)
    hint = hint or "replace the link by the file itself, or point the setting at the folder it lives in"
    try:
        root, real = Path(folder).resolve(), path.resolve()
    except (RuntimeError, OSError):
        raise UserError(f"{what} {path}: a symlink loop on the way", hint) from None
    if real != root and root not in real.parents:
        raise UserError(f"{what} {path} leads outside {folder} (to {real}, through a symlink)", hint)
    return path
