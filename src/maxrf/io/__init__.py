"""Scan readers, one module per format, behind one interface (:class:`maxrf.io.base.Scan`).

:func:`open_scan` picks the reader from the file (ripple, CRONO HDF5, Bruker .bcf, a
cube in any HDF5 file or zarr store).
"""

from maxrf.io.open import SUPPORTED, detect_format, open_scan

__all__ = ["SUPPORTED", "detect_format", "open_scan"]
