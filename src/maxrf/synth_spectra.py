"""Synthetic single spectra for the hard cases of energy calibration.

:func:`calibration_case` draws one point spectrum with a known energy axis from a seed:
tube anode (Rh, Mo, Ag, W, Cr, Cu), voltage, detector gain (5-20 eV per channel) and
offset (-1.2 to +0.3 keV), scatter-only blanks or spectra rich in element lines, low or
high counts, the zero (noise) peak on the axis, cut by its start or absent, and a primary
beam filter that removes the low-energy part of the scattered tube spectrum (scaling
lines, never shifting them: it acts before the detector broadens them). Every
physical ingredient (lines, Rayleigh and Compton scatter, continuum, escape peaks,
detector resolution, pile-up) comes from :func:`maxrf.synth.synth_spectrum` and
:mod:`maxrf.physics`; this module only draws the instrument and the sample.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import xraydb

from maxrf import physics
from maxrf.errors import ParameterError
from maxrf.synth import synth_spectrum

#: anodes drawn by :func:`calibration_case`
CASE_ANODES: tuple[str, ...] = ("Rh", "Mo", "Ag", "W", "Cr", "Cu")
#: primary beam filters (element, thickness in micrometres); None: no filter
FILTERS: tuple[tuple[str, float] | None, ...] = (
    None, ("Al", 12.5), ("Al", 100.0), ("Ti", 25.0), ("Ni", 25.0), ("Cu", 50.0),
)  # fmt: skip
# elements of line-rich spectra (pigments, grounds, papers, alloys)
_PALETTE: tuple[str, ...] = (
    "Si", "S", "Cl", "K", "Ca", "Ti", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "As", "Sr",
    "Zr", "Ag", "Sn", "Sb", "Ba", "Hg", "Pb", "Au",
)  # fmt: skip


@dataclass
class SpectrumCase:
    """A synthetic point spectrum and the truth it was drawn from.

    Attributes
    ----------
    counts : numpy.ndarray
        ``(C,)`` counts per channel (float64, Poisson).
    gain_keV, offset_keV : float
        True calibration: ``E = offset_keV + gain_keV * channel`` (keV).
    anode, tube_kv, theta_deg : str, float, float
        The simulated instrument: tube anode (element symbol), tube voltage (kV) and
        scattering angle (degrees), the truth that calibration and identification estimate.
    kind : str
        ``'blank'`` (scatter only) or ``'lines'`` (element lines).
    elements : dict of str to float
        Element -> counts of its lines.
    zero_peak : str
        ``'on'`` (fully on the axis), ``'cut'`` (cut by the start of the axis) or ``'off'``.
    filter : tuple of (str, float) or None
        Primary filter (element, micrometres).
    seed : int
        The seed it was drawn from.
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    scatter : dict of str to float
        Shares of the Rayleigh, Compton and continuum scatter templates.
    zero_counts : float
        Expected counts of the whole zero peak (on and off the axis), before ``scale``.
    scale : float
        Factor from the model's units to expected counts.
    matrix : str or None
        Scattering matrix that weighs each anode line's Compton partner
        (:func:`maxrf.physics.scatter_spectrum`).
    """

    counts: np.ndarray
    gain_keV: float
    offset_keV: float
    anode: str
    tube_kv: float
    theta_deg: float
    kind: str
    elements: dict[str, float] = field(default_factory=dict)
    zero_peak: str = "on"
    filter: tuple[str, float] | None = None
    seed: int = 0
    fwhm_at_6keV: float = 0.14
    scatter: dict[str, float] = field(default_factory=dict)
    zero_counts: float = 0.0
    scale: float = 1.0
    matrix: str | None = physics.SCATTER_MATRIX

    def energies(self) -> np.ndarray:
        """True channel energies (keV)."""
        return self.offset_keV + self.gain_keV * np.arange(self.counts.size, dtype=np.float64)

    def max_error_eV(self, gain_keV: float, offset_keV: float, lo: float = 2.0, hi: float = 20.0) -> float:
        """Largest |E_cal - E_true| (eV) over the channels whose true energy is in ``lo..hi`` keV."""
        e = self.energies()
        m = (e >= lo) & (e <= hi)
        if not np.any(m):
            return 0.0
        e_cal = offset_keV + gain_keV * np.arange(self.counts.size)
        return float(np.max(np.abs(e_cal[m] - e[m])) * 1e3)

    @property
    def component_names(self) -> list[str]:
        """Names of the rows of :meth:`expected_components`: the elements, ``'rayleigh'``,
        ``'compton'``, ``'continuum'`` and ``'zero'`` (when drawn)."""
        return [*self.elements, *self.scatter, *(["zero"] if self.zero_counts else [])]

    def expected_components(
        self,
        gain_keV: float | None = None,
        offset_keV: float | None = None,
        *,
        theta_deg: float | None = None,
        fwhm_at_6keV: float | None = None,
    ) -> np.ndarray:
        """Expected counts per channel of each ingredient of the spectrum.

        Parameters
        ----------
        gain_keV, offset_keV : float, optional
            Energy axis (keV/channel, keV) the channels are evaluated on (default: the true one).
        theta_deg, fwhm_at_6keV : float, optional
            Scattering angle (degrees) and detector FWHM (keV) at 5.9 keV (default: the true ones).

        Returns
        -------
        numpy.ndarray
            ``(k, C)``: one row per element, per scatter template and for the zero peak
            (when present), at their drawn amounts, in the order of
            :attr:`component_names`; at the defaults the rows sum to the mean of the
            Poisson draw ``counts``.
        """
        g = self.gain_keV if gain_keV is None else float(gain_keV)
        o = self.offset_keV if offset_keV is None else float(offset_keV)
        e = o + g * np.arange(self.counts.size, dtype=np.float64)
        kw = {
            "anode": self.anode, "tube_kv": self.tube_kv, "poisson": False,
            "theta_deg": self.theta_deg if theta_deg is None else float(theta_deg),
            "fwhm_at_6keV": self.fwhm_at_6keV if fwhm_at_6keV is None else float(fwhm_at_6keV),
            "matrix": self.matrix,
        }
        rows = _components(self.elements, self.scatter, e, self.filter, kw)
        if self.zero_counts:
            rows.append(_zero_row(self.zero_counts, e, kw))
        return self.scale * np.array(rows)

    def axis_bound(
        self, lo: float = 2.0, hi: float = 20.0, tol_eV: float = 10.0, *, nuisance: bool = True,
        robust: bool = False,
    ) -> dict[str, float]:
        """Cramér-Rao bound of an energy calibration of this spectrum.

        The Fisher information of the Poisson counts about gain and offset, with the
        amount of every ingredient, the scattering angle and the detector resolution
        unknown too when ``nuisance`` (the shapes of the lines and the filter known): no
        unbiased calibration that knows less does better on average. The information is
        that of the peaks (element lines, Rayleigh and Compton scatter, zero peak): the
        continuum counts as noise, for its shape depends on the tube, the filter and the
        sample in ways no calibration knows.

        ``robust`` (implies ``nuisance``) leaves unknown as well what a calibration of real
        spectra cannot take from tables: the amount of each group of tube lines (K-alpha,
        K-beta, L-alpha...) in the Rayleigh and in the Compton scatter, whose ratios the
        primary filter and the matrix set; the width of the lines apart from the zero
        peak's (the Fano factor); the Compton peaks' broadening; and their common place,
        which the Compton profile moves off the single-angle formula by more than the eV
        this bound counts in. A method that uses none of these as known can at best reach
        this bound.

        Returns
        -------
        dict
            ``sd_lo_eV``, ``sd_hi_eV``: the bound's standard deviation of the axis (eV) at
            ``lo`` and ``hi`` keV; ``p_within``: the probability that its error stays
            within ``tol_eV`` over ``lo..hi`` keV (Gaussian errors; by Anderson's theorem a
            larger covariance only lowers it).
        """
        comps = self.expected_components()
        names = self.component_names
        lam = comps.sum(axis=0)
        peaks = np.array([name != "continuum" for name in names])

        def moved(**kw: float) -> np.ndarray:
            return self.expected_components(**kw)[peaks].sum(axis=0)

        dg, do, dt, dw = 1e-6, 1e-4, 0.5, 0.002
        g, o, t, w = self.gain_keV, self.offset_keV, self.theta_deg, self.fwhm_at_6keV
        jac = [
            (moved(gain_keV=g + dg) - moved(gain_keV=g - dg)) / (2 * dg),
            (moved(offset_keV=o + do) - moved(offset_keV=o - do)) / (2 * do),
        ]
        if nuisance or robust:
            scatter = {"rayleigh", "compton"} if robust else set()  # split into line groups below
            jac += [
                *(row for row, name in zip(comps, names) if name not in scatter),
                (moved(theta_deg=t + dt) - moved(theta_deg=t - dt)) / (2 * dt),
                (moved(fwhm_at_6keV=w + dw) - moved(fwhm_at_6keV=w - dw)) / (2 * dw),
            ]
        if robust:
            jac += self._robust_columns(dw)
        ch = np.clip((np.array([lo, hi]) - o) / g, 0, self.counts.size - 1)
        return _axis_spread(np.array(jac), lam, ch, float(tol_eV))

    def _robust_columns(self, dw: float) -> list[np.ndarray]:
        """The derivatives :meth:`axis_bound` adds when ``robust``: the Rayleigh and the
        Compton peaks of each group of tube lines, the line widths apart from the zero
        peak's (step ``dw`` keV), the Compton broadening and the Compton peaks' place."""
        e = self.energies()
        t = None if self.filter is None else functools.partial(filter_transmission, filt=self.filter)

        def rows(broadening: float, lines: list[str] | None = None) -> dict[str, np.ndarray]:
            return physics.scatter_spectrum(
                e, anode=self.anode, tube_kv=self.tube_kv, theta_deg=self.theta_deg,
                fwhm_at_6keV=self.fwhm_at_6keV, compton_broadening=broadening, transmission=t,
                matrix=self.matrix, lines=lines,
            )

        groups: dict[str, list[str]] = {}
        for ln in physics.anode_lines(self.anode, self.tube_kv):
            groups.setdefault(ln.siegbahn[:2], []).append(ln.siegbahn)
        cols, compton = [], np.zeros(e.size)
        for members in groups.values():
            part = rows(physics.COMPTON_BROADENING, members)
            cols += [part["rayleigh"], part["compton"]]
            compton += part["compton"]  # the groups partition the tube's lines
        if self.zero_counts:  # without a zero peak the resolution's column is this one
            lines_only = np.array([name not in ("continuum", "zero") for name in self.component_names])

            def widths(f6: float) -> np.ndarray:
                return self.expected_components(fwhm_at_6keV=f6)[lines_only].sum(axis=0)

            cols.append((widths(self.fwhm_at_6keV + dw) - widths(self.fwhm_at_6keV - dw)) / (2 * dw))
        db = 1e-4
        cols.append((rows(physics.COMPTON_BROADENING + db)["compton"]
                     - rows(physics.COMPTON_BROADENING - db)["compton"]) / (2 * db))
        cols.append(np.gradient(compton) / self.gain_keV)  # its place: d/dE
        return cols


def _axis_spread(jac: np.ndarray, lam: np.ndarray, channels: np.ndarray, tol_eV: float) -> dict[str, float]:
    """:meth:`SpectrumCase.axis_bound` from its derivatives ``jac`` (gain and offset first,
    then the unknowns) of the expected counts ``lam``: the standard deviation of the axis
    (eV) at two ``channels`` and the chance its error stays within ``tol_eV`` between them."""
    from scipy import stats

    keep = np.any(jac != 0, axis=1)  # an ingredient with no counts on the axis says nothing
    keep[:2] = True
    j = jac[keep]
    fisher = (j / np.maximum(lam, 1e-9)) @ j.T
    # inverted on unit scale: the derivatives span twelve orders of magnitude, and a
    # pseudo-inverse on the raw scale drops real directions of uncertainty with them
    d = np.sqrt(np.maximum(np.diag(fisher), 1e-300))
    cov = (np.linalg.pinv(fisher / np.outer(d, d), rcond=1e-12, hermitian=True) / np.outer(d, d))[:2, :2]
    a = np.array([[channels[0], 1.0], [channels[1], 1.0]])  # the axis errors at the two channels
    cov_e = a @ cov @ a.T * 1e6  # eV^2
    sd = np.sqrt(np.diag(cov_e))
    tol = float(tol_eV)
    mvn = stats.multivariate_normal(mean=[0.0, 0.0], cov=cov_e + 1e-12 * np.eye(2), allow_singular=True)
    p = (mvn.cdf([tol, tol]) - mvn.cdf([-tol, tol]) - mvn.cdf([tol, -tol]) + mvn.cdf([-tol, -tol]))
    return {"sd_lo_eV": float(sd[0]), "sd_hi_eV": float(sd[1]), "p_within": float(np.clip(p, 0.0, 1.0))}


def filter_transmission(energies: np.ndarray, filt: tuple[str, float] | None) -> np.ndarray:
    """Transmission (0..1) of a primary filter (element, micrometres) at ``energies`` (keV)."""
    e = np.asarray(energies, dtype=np.float64)
    if filt is None:
        return np.ones_like(e)
    el, um = filt
    grid, mu = _mu_grid(el)
    log_mu = np.interp(np.log(np.clip(e, 0.1, 100.0)), np.log(grid), np.log(mu))
    return np.exp(-np.exp(log_mu) * um * 1e-4)


@functools.lru_cache(maxsize=16)
def _mu_grid(element: str) -> tuple[np.ndarray, np.ndarray]:
    """Linear attenuation (1/cm) of an element on a fine log grid 0.1-100 keV (xraydb)."""
    grid = np.geomspace(0.1, 100.0, 4000)
    return grid, xraydb.mu_elam(element, grid * 1e3) * xraydb.atomic_density(element)


def calibration_case(
    seed: int,
    *,
    anode: str | None = None,
    kind: str | None = None,
    gain_keV: float | None = None,
    offset_keV: float | None = None,
    matrix: str | None = physics.SCATTER_MATRIX,
) -> SpectrumCase:
    """One hard synthetic spectrum for calibration tests, drawn from ``seed``.

    Parameters
    ----------
    seed : int
        Seed of every random choice and of the Poisson noise.
    anode : str, optional
        Force the anode (default: drawn from :data:`CASE_ANODES`).
    kind : {'blank', 'lines'}, optional
        Force scatter-only or line-rich (default: drawn, half each).
    gain_keV, offset_keV : float, optional
        Force the true gain (keV/channel) and offset (keV).
    matrix : str or None
        Scattering matrix of :func:`maxrf.physics.scatter_spectrum`; None, the simpler model
        whose Poisson draws some calibration tests' mechanisms were found on.

    Returns
    -------
    SpectrumCase
    """
    rng = np.random.default_rng([20261202, int(seed)])
    anode = anode or str(rng.choice(CASE_ANODES))
    if anode not in CASE_ANODES:
        raise ParameterError(f"anode must be one of {', '.join(CASE_ANODES)}, got {anode!r}")
    kind = kind or ("blank" if rng.uniform() < 0.5 else "lines")
    if kind not in ("blank", "lines"):
        raise ParameterError(f"kind must be 'blank' or 'lines', got {kind!r}")
    kv, gain, offset, e = _draw_axis(rng, anode, gain_keV, offset_keV)
    theta = float(rng.uniform(85.0, 150.0))
    fwhm6 = float(rng.uniform(0.125, 0.170))
    filt = FILTERS[int(rng.integers(len(FILTERS)))]
    total = float(10 ** rng.uniform(4.7, 7.0))  # counts in the spectrum
    elements = _draw_elements(rng, kind)
    scatter = {
        "rayleigh": float(rng.uniform(0.03, 0.15)),
        "compton": float(rng.uniform(0.10, 0.40)),
        "continuum": float(rng.uniform(0.15, 0.50)),
    }
    zero_share = 0.0 if rng.uniform() < 0.25 else float(10 ** rng.uniform(-2.5, -1.0))
    kw = {"anode": anode, "tube_kv": kv, "theta_deg": theta, "fwhm_at_6keV": fwhm6, "poisson": False,
          "matrix": matrix}
    lam = _filtered(elements, scatter, e, filt, kw)
    zero_counts = 0.0
    if zero_share:
        zero_counts = zero_share * float(lam.sum())
        lam = lam + _zero_row(zero_counts, e, kw)
    scale = total / max(float(lam.sum()), 1e-12)
    lam *= scale
    counts = rng.poisson(np.maximum(lam, 0.0)).astype(np.float64)
    zero_state = "off" if zero_share == 0.0 or offset > 0.05 else ("cut" if offset > -0.15 else "on")
    return SpectrumCase(
        counts=counts,
        gain_keV=gain,
        offset_keV=offset,
        anode=anode,
        tube_kv=kv,
        theta_deg=theta,
        kind=kind,
        elements=elements,
        zero_peak=zero_state,
        filter=filt,
        seed=int(seed),
        fwhm_at_6keV=fwhm6,
        scatter=scatter,
        zero_counts=zero_counts,
        scale=scale,
        matrix=matrix,
    )


def _draw_axis(
    rng: np.random.Generator, anode: str, gain_keV: float | None, offset_keV: float | None
) -> tuple[float, float, float, np.ndarray]:
    """Tube voltage (kV), true gain (keV/channel), offset (keV) and channel energies (keV)
    of one calibration case (the gain and offset drawn unless given)."""
    # instruments run at round voltages (and the continuum template is cached per voltage)
    kv = float(rng.choice([30.0, 35.0, 40.0] if anode == "Cr" else [35.0, 40.0, 45.0, 50.0]))
    gain = float(gain_keV if gain_keV is not None else rng.uniform(0.005, 0.020))
    offset = float(offset_keV if offset_keV is not None else rng.uniform(-1.2, 0.3))
    # as many channels as cover the excited range at this gain (1024..4096)
    n = int(min(4096, max(1024, 2 ** int(np.round(np.log2((min(kv, 40.0) - offset) / gain))))))
    return kv, gain, offset, offset + gain * np.arange(n)


def _components(
    elements: dict[str, float], scatter: dict[str, float], e: np.ndarray, filt: tuple[str, float] | None,
    kw: dict,
) -> list[np.ndarray]:
    """Expected counts of each element's lines and each scatter template behind a primary
    filter, one array per ingredient (elements first, then ``scatter``'s order).

    The filter removes the soft part of the primary beam: the scattered continuum photon
    energy by photon energy before the detector broadens it, each scattered anode line
    (Rayleigh and Compton) by its transmission at the line's energy, and the excitation of
    the element lines shell by shell (:func:`maxrf.physics.excitation_transmission`: the
    lines of one shell keep their ratios). It acts on photons before the detector
    broadens them, so it scales lines and never shifts them: a line keeps its place on
    the true energy axis.
    """
    def trans(x: np.ndarray) -> np.ndarray:
        return filter_transmission(x, filt)

    t = None if filt is None else trans
    fw6, kv = kw["fwhm_at_6keV"], kw["tube_kv"]
    rows = [amp * physics.element_spectrum(el, e, tube_kv=kv, fwhm_at_6keV=fw6, primary_transmission=t)
            for el, amp in elements.items()]
    if scatter:
        sc = physics.scatter_spectrum(
            e, anode=kw["anode"], tube_kv=kv, theta_deg=kw["theta_deg"], fwhm_at_6keV=fw6, transmission=t,
            matrix=kw.get("matrix", physics.SCATTER_MATRIX),
        )
        rows += [share * sc[name] for name, share in scatter.items()]
    return rows


def _filtered(
    elements: dict[str, float], scatter: dict[str, float], e: np.ndarray, filt: tuple[str, float] | None,
    kw: dict,
) -> np.ndarray:
    """Expected counts of the element lines and the scatter behind a primary filter: the
    sum of :func:`_components`."""
    lam = np.zeros(e.size)
    for row in _components(elements, scatter, e, filt, kw):
        lam += row
    return lam


def _zero_row(zero_counts: float, e: np.ndarray, kw: dict) -> np.ndarray:
    """Expected counts of a zero (noise) peak of ``zero_counts`` counts in all."""
    kw = {k: v for k, v in kw.items() if k != "matrix"}  # the zero peak scatters nothing
    return zero_counts * synth_spectrum({}, e, scatter={"zero": 1.0}, **kw)


def _draw_elements(rng: np.random.Generator, kind: str) -> dict[str, float]:
    """Element -> relative line counts: 1-6 palette elements, or traces for a blank."""
    elements: dict[str, float] = {}
    if kind == "lines":
        k = int(rng.integers(1, 7))
        for el in rng.choice(_PALETTE, size=k, replace=False):
            elements[str(el)] = float(10 ** rng.uniform(-1.0, 0.0))
    else:  # trace lines of air, the filter or the sample holder, sometimes
        for el in ("Ar", "Fe", "Cu"):
            if rng.uniform() < 0.25:
                elements[el] = float(10 ** rng.uniform(-3.0, -1.7))
    return elements
