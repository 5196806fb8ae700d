"""Small checks on the files and folders an experiment writes."""

import os
import stat
from pathlib import Path, PurePosixPath

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


OUTSIDE_HINT = ("name a file inside <embeddings_path>/<dataset>/ (a sub-folder is fine); to use files elsewhere, "
                "point llm_config.embeddings_path at their folder")


def inside_name(value, what, hint=OUTSIDE_HINT):
    """A file name relative to a folder the experiment names (e.g. the dataset's embedding folder): neither an
    absolute path nor one with a '..' part, so whatever is read or written there stays inside that folder.

    Raises:
        UserError: naming ``what`` and the value.
    """
    from .errors import UserError

    if not isinstance(value, str) or not value or "\0" in value:
        raise UserError(f"{what} must be a file name, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise UserError(f"{what} {value!r} is outside the folder the experiment names for it", hint)
    return value
