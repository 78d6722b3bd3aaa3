"""Bruker / Lispix "ripple" scans: a ``.rpl`` text header and a ``.raw`` binary cube.

The ``.rpl`` header is a list of ``key value`` lines (tab or space separated). Keys are
case-insensitive (Bruker writes ``data-Length``); an optional first line reading
literally ``key value`` is skipped, as are empty lines and lines starting with ``;`` or
``#``; anything after a ``;`` on a line is a comment. The keys read are:

============  =========================================  ==========================
key           values                                     default
============  =========================================  ==========================
width         pixels per row (>= 1)                      required
height        rows (>= 1)                                required
depth         channels per pixel (>= 1)                  required
data-length   bytes per value: 1, 2, 4, 8                required
data-type     ``unsigned``, ``signed``, ``float``        required
offset        bytes to skip at the start of the .raw     0
byte-order    ``little-endian``, ``big-endian``,         ``dont-care``
              ``dont-care``
record-by     ``vector`` (raw layout (height, width,     ``vector``
              depth)), ``image`` (raw layout (depth,
              height, width)), ``dont-care``
============  =========================================  ==========================

Decisions where the format is loose:

* ``float`` needs ``data-length`` 4 or 8.
* ``byte-order dont-care`` with ``data-length`` > 1 is read as little-endian (what every
  writer of such files in practice means: the x86 machine that wrote them).
* ``record-by dont-care`` is read as ``vector``.
* The energy calibration (gain and offset in keV, energy of channel ``i`` =
  ``offset + gain * i``) is taken, in this order of preference, from the Bruker M6 keys
  ``depthscaleincrement`` / ``depthscaleorigin`` (keV); the rosettasciio keys
  ``depth-scale`` / ``depth-origin`` when ``depth-units`` is ``eV`` or ``keV``; the
  Lispix key ``ev-per-chan`` (eV, origin 0). A zero or negative gain counts as no
  calibration (rosettasciio writes ``ev-per-chan 0`` for gains below 0.5 eV); a
  calibration value that is not a finite number is an error.
* A header larger than 1 MB, or one that is binary rather than text (a NUL byte, or
  more than 5 % control bytes), is refused; so is a header asking for more than 2**50
  bytes of data, and a key repeated with a different value. Numbers are ASCII decimal
  integers (a leading ``+`` is allowed); calibration values may use a decimal comma.

The ``.raw`` file is only ever memory-mapped read-only (``np.memmap`` mode ``'r'``); it
is opened anew by every :meth:`RippleScan.read_block` call, so a :class:`RippleScan` is
small, picklable and usable on ``dask.distributed`` workers.

Modules: ``header`` (keys, checks, :class:`RippleHeader`, :func:`read_rpl`), ``scan``
(:class:`RippleScan`, :func:`open_scan`), ``write`` (:func:`write_ripple`,
:class:`RippleWriter`).
"""

from __future__ import annotations

from maxrf.io.ripple.header import MAX_DATA_BYTES, MAX_HEADER_BYTES, RippleHeader, likely_key, read_rpl
from maxrf.io.ripple.scan import RippleScan, open_scan
from maxrf.io.ripple.write import RippleWriter, write_ripple

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_HEADER_BYTES",
    "RippleHeader",
    "RippleScan",
    "RippleWriter",
    "likely_key",
    "open_scan",
    "read_rpl",
    "write_ripple",
]
