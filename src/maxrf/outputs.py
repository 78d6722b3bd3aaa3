"""Output locations checked before the long work, and OS errors said in one line.

Every command that writes (report, speckles and segment ``--out``/``--plot``, demo, maps
and decompose ``--out``) probes its output folder first, so a read-only, missing or
vanished place is one clear :mod:`maxrf.errors` line before minutes of computing, not a
traceback after them.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from maxrf.errors import DiskFullError, MaxrfError, OutputExistsError, OutputLocationError


def os_error(exc: OSError, path: str | os.PathLike, what: str = "write") -> MaxrfError:
    """The :mod:`maxrf.errors` exception for an OS error on ``path``: one line naming the
    file and the cause (full disk, no permission, read-only, gone)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"cannot {what}: the disk is full ({reason})", path)
    return OutputLocationError(f"cannot {what} ({reason})", path)


def probe_folder(folder: str | os.PathLike, *, create: bool = False) -> Path:
    """Check that files can be created in ``folder`` (by creating and removing one).

    ``os.access`` is not enough: it says yes to root on a read-only file system. With
    ``create`` the folder (and parents) are made first.

    Raises
    ------
    OutputLocationError
        The folder does not exist (and ``create`` is False), is a file, or cannot be
        written in.
    """
    folder = Path(folder) if str(folder) else Path(".")
    if create and not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise os_error(exc, folder, "create the folder") from None
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise OutputLocationError(f"the output folder {why}", folder)
    probe = folder / f".maxrf-probe-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise os_error(exc, folder, "write in the output folder") from None
    try:
        probe.unlink()
    except OSError:
        pass
    return folder


def probe_new_folder(folder: str | os.PathLike) -> Path:
    """Check, without creating anything, that ``folder`` can be made and written in later
    (an output folder the command creates after its long work).

    An existing ``folder`` is probed; else its nearest existing parent must be a writable
    folder (no empty folder is left when the work then fails).

    Raises
    ------
    OutputLocationError
        ``folder`` or a parent is a file, or the nearest existing parent is not writable.
    """
    folder = Path(folder) if str(folder) else Path(".")
    if folder.exists():
        if not folder.is_dir():
            raise OutputLocationError("the output location is a file, not a folder", folder)
        return probe_folder(folder)
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputLocationError(f"cannot create the output folder: {parent} is a file", folder)
    probe_folder(parent)
    return folder


def probe_file(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be written: its folder is writable and it is not a folder."""
    path = Path(path)
    probe_folder(path.parent)
    if path.is_dir():
        raise OutputLocationError("the output is a folder; give a file name", path)
    return path


def check_new_output(out: str | os.PathLike, overwrite: bool) -> Path:
    """Check before any work that ``out`` can be created: its folder exists and is writable,
    and ``out`` does not exist unless ``overwrite``.

    Raises
    ------
    OutputLocationError
        The folder is missing or not writable.
    OutputExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputLocationError("output folder does not exist", parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputLocationError("output folder is not writable", parent)
    if out.exists() and not overwrite:
        raise OutputExistsError(
            "already exists; pass overwrite=True (--overwrite on the command line) to replace it", out)
    return out
