"""The hotmax atlas: built from the max spectrum and the stored argmax pixels, or read back."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from maxrf.compat import HotmaxPlots
from maxrf.errors import ConcurrentWriteError, CorruptDataError, ParameterError
from maxrf.hotmax.spectra import (
    DEFAULTS,
    LAYER,
    LAYER_VERSION,
    _check_nonnegative,
    _check_positive,
    _open,
    element_main_lines,
    group_pixels,
    read_pixel_spectra,
    spectrum_noise,
)
from maxrf.peaks import restore_level  # noqa: F401 - kept as a public name of hotmax
from maxrf.store import DataStack
from maxrf.types import ClientLike


# ------------------------------------------------------------------------------ atlas
class HotmaxAtlas(HotmaxPlots):
    """The hotmax spectra of a scan, built once and stored in its datastack.

    Drawn by :mod:`maxrf.plot` (``plot_spectrum(atlas, n)``); maxrf4u's methods
    ``atlas.plot_spectrum(n)`` and ``atlas.plot_spectra()`` come from
    :class:`maxrf.compat.HotmaxPlots`.

    Parameters
    ----------
    ds : DataStack or str or os.PathLike
        The scan (a calibrated datastack, or its path).
    recompute : bool
        Build the atlas even if the datastack holds one (and replace it).
    prominence : float, optional
        Minimum prominence of a max-spectrum peak (counts of the max spectrum). Default:
        ``n_sigma_peaks`` times the local counting noise of the max spectrum.
    n_sigma : float, optional
        Height of the noise envelope above each baseline (Poisson standard deviations);
        default 3.
    n_sigma_peaks : float, optional
        Significance of max-spectrum peaks for the default prominence; default 5.
    smooth : float, optional
        Gaussian smoothing (sigma, channels) before the sub-peak search; default 1.
    store : bool
        Write a newly built atlas into the datastack (layer ``hotmax``).
    client : dask.distributed.Client or str, optional
        Read the hotmax pixels' spectra on this cluster (or scheduler address; default
        ``MAXRF_SCHEDULER``, else local threads).

    Notes
    -----
    A stored atlas is read back (never touching the cube) unless ``recompute`` is set or
    one of the build options above is given with a value other than the stored one.
    Energies (``x_keVs``, ``peak_keV``, ``subpeak_keV``) follow the datastack's *current*
    calibration; the stored spectra are in channels and do not depend on it.

    Attributes
    ----------
    x_keVs : numpy.ndarray
        ``(C,)`` energy of each channel (keV).
    hotmax_pixels : numpy.ndarray
        ``(n_peaks, 3)`` int ``[row, col, channel]``: one row per max-spectrum peak, sorted
        by channel (as in maxrf4u).
    peak_spectrum : numpy.ndarray
        ``(n_peaks,)`` int: index in :attr:`hotmax_spectra` of the spectrum holding each
        peak; ``hotmax_spectra[peak_spectrum[k]]`` is the spectrum of peak ``k``.
    hotmax_spectra : numpy.ndarray
        ``(n_spectra, C)`` float counts: ``hotmax_spectra[n]`` is the n-th *grouped* spectrum
        (one per distinct hotmax pixel, sorted by lowest-energy peak), unlike maxrf4u's one
        spectrum per peak.
    spectrum_pixels : numpy.ndarray
        ``(n_spectra, 2)`` int ``[row, col]`` of each hotmax spectrum.
    baselines, envelopes : numpy.ndarray
        ``(n_spectra, C)`` baseline and Poisson noise envelope of each spectrum (counts).
    subpeaks : list of numpy.ndarray
        Channels of the sub-peaks of each spectrum.
    prominence : float or None
        The prominence the atlas was built with (None: noise-scaled default).

    Raises
    ------
    LayerMissingError
        If the datastack has no energy calibration.
    CorruptDataError
        If the stored layer does not fit the cube.
    """

    def __init__(
        self,
        ds: DataStack | str | os.PathLike,
        *,
        recompute: bool = False,
        prominence: float | None = None,
        n_sigma: float | None = None,
        n_sigma_peaks: float | None = None,
        smooth: float | None = None,
        store: bool = True,
        client: ClientLike = None,
    ):
        self.datastack = _open(ds)
        self._client = client
        asked = {
            "prominence": _check_positive("prominence", prominence),
            "n_sigma": _check_positive("n_sigma", n_sigma),
            "n_sigma_peaks": _check_positive("n_sigma_peaks", n_sigma_peaks),
            "smooth": None if smooth is None else _check_nonnegative("smooth", smooth),
        }
        self.x_keVs = np.asarray(self.datastack.energies, dtype=np.float64)
        stored = None
        if not recompute and LAYER in self.datastack.layers:
            stored = self.datastack.read(LAYER)
            if any(v is not None and stored.attrs.get(k) != v for k, v in asked.items()):
                stored = None  # asked for other options than the stored atlas's: rebuild
        if stored is not None:
            self._load(stored)
        else:
            self._build(
                asked["prominence"],
                DEFAULTS["n_sigma"] if n_sigma is None else asked["n_sigma"],
                DEFAULTS["n_sigma_peaks"] if n_sigma_peaks is None else asked["n_sigma_peaks"],
                DEFAULTS["smooth"] if smooth is None else asked["smooth"],
            )
            if store:
                self._store()

    # ------------------------------------------------------------------ build / io
    def _build(self, prominence: float | None, n_sigma: float, n_sigma_peaks: float, smooth: float) -> None:
        ds = self.datastack
        ymax = np.asarray(ds.max_spectrum, dtype=np.float64)
        from maxrf.peaklist import max_spectrum_peaks  # the list the peak maps share

        channels, fwhm = max_spectrum_peaks(ymax, prominence, n_sigma=n_sigma_peaks)
        argmax = np.asarray(ds.argmax_pixels, dtype=np.int64)
        pixels = np.column_stack([argmax[channels].reshape(-1, 2), channels]).astype(np.int64)
        peak_spectrum, spectrum_pixels = group_pixels(pixels)
        spectra = read_pixel_spectra(ds, spectrum_pixels, client=self._client)
        counts = ds.dtype.kind in "ui"
        n, c = spectra.shape
        baselines = np.zeros((n, c))
        envelopes = np.zeros((n, c))
        subpeaks = []
        for i in range(n):
            baselines[i], envelopes[i], sub = spectrum_noise(
                spectra[i], fwhm_channels=fwhm, n_sigma=n_sigma, smooth=smooth, counts=counts
            )
            subpeaks.append(sub.astype(np.int64))
        self.hotmax_pixels = pixels
        self.peak_spectrum = peak_spectrum
        self.hotmax_spectra = spectra
        self.spectrum_pixels = spectrum_pixels
        self.baselines = baselines
        self.envelopes = envelopes
        self.subpeaks = subpeaks
        self.prominence = prominence
        self.n_sigma = n_sigma
        self.n_sigma_peaks = n_sigma_peaks
        self.smooth = smooth
        self.fwhm_channels = float(fwhm)

    def _attrs(self) -> dict[str, Any]:
        return {
            "peak_keV": self.peak_keV,
            "subpeak_keV": self.subpeak_keV,
            "prominence": self.prominence,
            "subpeak_channels": [s.tolist() for s in self.subpeaks],
            "n_sigma": self.n_sigma,
            "n_sigma_peaks": self.n_sigma_peaks,
            "smooth": self.smooth,
            "fwhm_channels": self.fwhm_channels,
            "layer_version": LAYER_VERSION,
        }

    def _store(self) -> None:
        arrays = {
            "pixels": self.hotmax_pixels,
            "peak_spectrum": self.peak_spectrum,
            "spectra": self.hotmax_spectra,
            "spectrum_pixels": self.spectrum_pixels,
            "baselines": self.baselines,
            "envelopes": self.envelopes,
        }
        try:
            self.datastack.write_layer(LAYER, arrays, self._attrs())
        except (OSError, ConcurrentWriteError) as exc:
            warnings.warn(
                f"{self.datastack.path}: hotmax atlas not stored ({exc}); it lives in memory only",
                stacklevel=3,
            )

    def _load(self, layer: Any) -> None:
        c = self.datastack.shape[2]
        try:
            pixels = np.asarray(layer["pixels"], dtype=np.int64).reshape(-1, 3)
            spectra = np.asarray(layer["spectra"], dtype=np.float64).reshape(-1, c)
            n = len(spectra)
            self.hotmax_pixels = pixels
            self.peak_spectrum = np.asarray(layer["peak_spectrum"], dtype=np.int64).reshape(len(pixels))
            self.hotmax_spectra = spectra
            self.spectrum_pixels = np.asarray(layer["spectrum_pixels"], dtype=np.int64).reshape(n, 2)
            self.baselines = np.asarray(layer["baselines"], dtype=np.float64).reshape(n, c)
            self.envelopes = np.asarray(layer["envelopes"], dtype=np.float64).reshape(n, c)
            attrs = layer.attrs
            self.subpeaks = [np.asarray(s, dtype=np.int64) for s in attrs["subpeak_channels"]]
            if len(self.subpeaks) != n or (n and self.peak_spectrum.max() >= n):
                raise ValueError("spectra, sub-peaks and peaks disagree")
            channels = np.concatenate([pixels[:, 2], *self.subpeaks])
            if channels.size and (channels.min() < 0 or channels.max() >= c):
                raise ValueError(f"channels outside 0..{c - 1}")
            self.prominence = attrs.get("prominence")
            self.n_sigma = float(attrs.get("n_sigma", DEFAULTS["n_sigma"]))
            self.n_sigma_peaks = float(attrs.get("n_sigma_peaks", DEFAULTS["n_sigma_peaks"]))
            self.smooth = float(attrs.get("smooth", DEFAULTS["smooth"]))
            self.fwhm_channels = float(attrs.get("fwhm_channels", 3.0))
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptDataError(
                f"stored hotmax layer is inconsistent ({exc}); rebuild it with recompute=True "
                "or 'maxrf hotmax --recompute'",
                self.datastack.path,
            ) from exc

    # ------------------------------------------------------------------ derived
    def __len__(self) -> int:
        return len(self.hotmax_spectra)

    def __repr__(self) -> str:
        return (
            f"<HotmaxAtlas {self.datastack.path.name!r}: {len(self.hotmax_pixels)} peaks "
            f"in {len(self)} hotmax spectra>"
        )

    @property
    def peak_channels(self) -> np.ndarray:
        """``(n_peaks,)`` channel of each max-spectrum peak."""
        return self.hotmax_pixels[:, 2]

    @property
    def peak_keVs(self) -> np.ndarray:
        """``(n_peaks,)`` energy (keV) of each max-spectrum peak."""
        return self.x_keVs[self.peak_channels]

    @property
    def peak_spectra(self) -> np.ndarray:
        """``(n_peaks, C)`` the hotmax spectrum of each max-spectrum peak: maxrf4u's
        ``hotmax_spectra`` (one row per peak, rows repeated for peaks sharing a pixel)."""
        return self.hotmax_spectra[self.peak_spectrum]

    def spectrum_peaks(self, n: int) -> np.ndarray:
        """Indices (rows of :attr:`hotmax_pixels`) of the max-spectrum peaks held by spectrum ``n``."""
        self._check_index(n)
        return np.flatnonzero(self.peak_spectrum == n)

    @property
    def peak_keV(self) -> list[list[float]]:
        """Per hotmax spectrum, the energies (keV) of the max-spectrum peaks it holds."""
        e = self.peak_keVs
        return [[float(v) for v in e[self.peak_spectrum == n]] for n in range(len(self))]

    @property
    def subpeak_keV(self) -> list[list[float]]:
        """Per hotmax spectrum, the energies (keV) of its sub-peaks."""
        return [[float(v) for v in self.x_keVs[s]] for s in self.subpeaks]

    def summary(self) -> list[dict[str, Any]]:
        """The atlas as plain data: per spectrum ``index``, ``pixel`` [row, col],
        ``peak_keV`` and ``subpeak_keV`` (keV, rounded to eV)."""
        peak_keV, sub_keV = self.peak_keV, self.subpeak_keV
        return [
            {
                "index": n,
                "pixel": [int(v) for v in self.spectrum_pixels[n]],
                "peak_keV": [round(v, 3) for v in peak_keV[n]],
                "subpeak_keV": [round(v, 3) for v in sub_keV[n]],
            }
            for n in range(len(self))
        ]

    def _check_index(self, n: int) -> int:
        try:
            i = int(n)
        except (TypeError, ValueError):
            raise ParameterError(f"hotmax spectrum index must be an integer, got {n!r}") from None
        if not -len(self) <= i < len(self):
            raise ParameterError(f"no hotmax spectrum {n}: the atlas has {len(self)} (0..{len(self) - 1})")
        return i % len(self)

    # ------------------------------------------------------------------ finder
    def finder(
        self,
        element: str,
        *,
        tolerance_keV: float | None = None,
        strict: bool = False,
        tube_kv: float | None = None,
    ) -> np.ndarray:
        """Hotmax spectra whose sub-peaks match an element's main lines.

        A spectrum matches when one of its sub-peaks lies within the tolerance of the
        element's strongest line group on the energy axis (Ka; La or Ma for heavy
        elements whose K shell is not excited), and with ``strict`` also of every other
        main group (Kb, Lb...; see :func:`element_main_lines`).

        Parameters
        ----------
        element : str
            Chemical symbol (``'Cu'``).
        tolerance_keV : float, optional
            Maximum distance between a line and a sub-peak (keV). Default: half the
            detector FWHM at the line (:func:`maxrf.physics.fwhm_keV`, scaled to the
            measured peak width) plus one channel.
        strict : bool
            Require every main line group, not only the strongest.
        tube_kv : float, optional
            Tube voltage (kV); default the calibration's, else 40.

        Returns
        -------
        numpy.ndarray
            Indices into :attr:`hotmax_spectra` (int, ascending); empty when none matches.
        """
        from maxrf import physics

        if tube_kv is None:
            cal = self.datastack.calibration or {}
            tube_kv = float(cal.get("tube_kv") or 40.0)
        tol = _check_positive("tolerance_keV", tolerance_keV)
        lines = element_main_lines(element, (self.x_keVs[0], self.x_keVs[-1]), tube_kv)
        if not lines:
            return np.zeros(0, dtype=np.int64)
        if not strict:
            lines = lines[:1]
        gain = abs(float(self.x_keVs[1] - self.x_keVs[0])) if len(self.x_keVs) > 1 else 0.0
        # detector FWHM at 6 keV from the measured peak width, for the default tolerance
        fwhm6 = max(self.fwhm_channels * gain, 0.121)
        hits = []
        for n, sub in enumerate(self.subpeaks):
            if sub.size == 0:
                continue
            e = self.x_keVs[sub]
            ok = True
            for _g, energy, _rel in lines:
                t = tol if tol is not None else 0.5 * physics.fwhm_keV(energy, fwhm6) + gain
                if not np.any(np.abs(e - energy) <= t):
                    ok = False
                    break
            if ok:
                hits.append(n)
        return np.asarray(hits, dtype=np.int64)


def build_hotmax(
    ds: DataStack | str | os.PathLike,
    prominence: float | None = None,
    **kw: Any,
) -> HotmaxAtlas:
    """Build the hotmax atlas of a datastack and store it (layer ``hotmax``).

    Parameters
    ----------
    ds : DataStack or str or os.PathLike
        A calibrated datastack or its path.
    prominence : float, optional
        Minimum prominence of a max-spectrum peak (counts); default noise-scaled.
    **kw
        Further :class:`HotmaxAtlas` options (``n_sigma``, ``n_sigma_peaks``, ``smooth``,
        ``store``).

    Returns
    -------
    HotmaxAtlas
        The new atlas.
    """
    return HotmaxAtlas(ds, recompute=True, prominence=prominence, **kw)
