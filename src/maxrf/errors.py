"""Project exceptions.

Every error a user can cause (a bad file, a bad option, a damaged store) is raised as a
subclass of :class:`MaxrfError` whose message names the file or argument at fault and
the problem. The CLI prints ``str(exc)`` on one line and exits non-zero.
"""

from __future__ import annotations

import os


class MaxrfError(Exception):
    """Base class of all maxrf errors.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The file or directory at fault; it is put at the start of the message.
    message : str
        What is wrong, in plain words.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class ScanFormatError(MaxrfError, ValueError):
    """A scan header or raw file is malformed, inconsistent or unsupported."""


class RawSizeError(ScanFormatError):
    """The .raw file size does not match the .rpl header."""


class MissingFileError(MaxrfError, FileNotFoundError):
    """An input file (.rpl, .raw, spectrum, datastack) does not exist."""


class OutputExistsError(MaxrfError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class OutputLocationError(MaxrfError, OSError):
    """The output folder is missing or not writable."""


class DiskFullError(MaxrfError, OSError):
    """The disk filled up during a write; nothing was left behind."""


class NotADataStackError(MaxrfError):
    """A path is not a maxrf datastack (or not a complete one)."""


class DataStackVersionError(MaxrfError):
    """A datastack written in a format version this maxrf cannot read."""


class CorruptDataError(MaxrfError):
    """A stored chunk or layer fails its checksum or consistency check."""


class LayerMissingError(MaxrfError, KeyError):
    """A derived layer (calibration, hotmax, maps...) has not been computed yet."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class ConcurrentWriteError(MaxrfError):
    """Another process is writing the same datastack layer."""


class SpectrumFormatError(MaxrfError, ValueError):
    """A point spectrum file cannot be read."""


class CalibrationError(MaxrfError, ValueError):
    """An energy calibration cannot be found or the options given for it are invalid."""


class ParameterError(MaxrfError, ValueError):
    """A function argument or CLI option has an invalid value."""


class ClusterError(MaxrfError):
    """The dask.distributed scheduler cannot be reached, or the cluster lost the run."""
