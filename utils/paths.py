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
