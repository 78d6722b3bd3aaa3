"""Registration of scans onto a photograph of the artwork.

:func:`register` finds the homography that maps scan pixel ``(col, row, 1)`` to photo pixel
``(x, y, w)`` (pixel centres at integers), automatically (mutual information, coarse to
fine: :mod:`maxrf.registration.auto`) or from control points (normalised DLT, RANSAC), and
judges it (:mod:`maxrf.registration.verdict`): ``'good'``, ``'doubtful'`` or ``'failed'``
with the evidence. The result is stored as the datastack's ``registration`` layer.
"""

from maxrf.registration.homography import apply, fit_dlt, fit_ransac
from maxrf.registration.register import register, register_image, scan_image
from maxrf.registration.result import Registration, read_registration, write_registration

__all__ = [
    "Registration",
    "apply",
    "fit_dlt",
    "fit_ransac",
    "read_registration",
    "register",
    "register_image",
    "scan_image",
    "write_registration",
]
