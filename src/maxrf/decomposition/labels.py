"""Which elements explain each component: NNLS over the line patterns and the scatter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maxrf import physics
from maxrf.solve import nnls_gram
from maxrf.store import DataStack

_MIN_ELEMENT_SHARE = 0.02


def label_components(components: np.ndarray, e: np.ndarray, lo: int, hi: int, anode: str,
                      tube_kv: float, candidates: Sequence[str] | None
                      ) -> tuple[list[list[str]], np.ndarray]:
    """Elements whose line patterns explain each component, by NNLS over element templates,
    the anode's scatter and a smooth background; and the share of each component explained."""
    if candidates is None:
        candidates = _peak_candidates(components, e, lo, hi, anode, tube_kv)
    tpl, names = [], []
    for el in candidates:
        t = physics.element_spectrum(el, e, tube_kv=tube_kv)[lo:hi]
        if t.sum() > 1e-3:
            tpl.append(t / t.sum())
            names.append(el)
    extra = []
    # the scattering angle is not known here: Compton templates over the angles of MA-XRF
    # heads let the anode's scatter be explained as scatter, not as neighbouring elements
    for i, theta in enumerate(range(60, 171, 10)):
        sc = physics.scatter_spectrum(e, anode=anode, tube_kv=tube_kv, theta_deg=float(theta))
        for key in (("rayleigh", "continuum", "compton") if i == 0 else ("compton",)):
            t = sc[key][lo:hi]
            if t.sum() > 0:
                extra.append(t / t.sum())
    x = np.linspace(0.0, 1.0, hi - lo)
    smooth = [x**d / np.sum(x**d) for d in range(4)] + [(1 - x) ** 3 / np.sum((1 - x) ** 3)]
    a_mat = np.array(tpl + extra + smooth).T
    # every component at once on the normal equations (the fits' one NNLS solver; scipy's
    # nnls would import scipy.optimize, ~0.45 s and ~22 MB, for a dozen small problems)
    gram = a_mat.T @ a_mat
    rhs = components[:, lo:hi] @ a_mat
    coefs, _ = nnls_gram(gram, rhs, rhs @ np.linalg.pinv(gram, rcond=1e-12, hermitian=True))
    labels, explained = [], []
    for comp, coef in zip(components, coefs):
        y = comp[lo:hi]
        el_counts = coef[: len(names)]
        total = max(float(y.sum()), 1e-12)
        fit = a_mat @ coef
        explained.append(1.0 - float(np.abs(y - fit).sum()) / total / 2)
        lines = el_counts.sum()
        order = np.argsort(el_counts)[::-1]
        top = float(el_counts.max()) if el_counts.size else 0.0
        labels.append([names[i] for i in order if lines > 0 and el_counts[i] >= _MIN_ELEMENT_SHARE * total
                       and el_counts[i] >= 0.05 * top])
    return labels, np.clip(np.array(explained), 0.0, 1.0)


def _peak_candidates(components: np.ndarray, e: np.ndarray, lo: int, hi: int, anode: str,
                     tube_kv: float) -> list[str]:
    """Elements with a main line at a peak of some component (no identification stored)."""
    from maxrf.identify.fitting import candidate_elements
    from maxrf.peaks.finding import prominent_peaks

    peaks: list[float] = []
    for comp in components:
        y = comp[lo:hi]
        idx = prominent_peaks(y, 0.01 * float(y.max()) if y.max() > 0 else 1.0)
        peaks += [float(e[lo + i]) for i in idx]
    return candidate_elements(sorted(set(peaks)), tube_kv=tube_kv, exclude=(anode,),
                              max_keV=float(e[hi - 1]))


def stored_candidates(ds: DataStack) -> list[str] | None:
    """Elements present or possible in the identification layer (None without one)."""
    if "identification" not in ds.layers:
        return None
    out = [str(ent.get("element")) for ent in ds.read("identification").attrs.get("elements", [])
           if isinstance(ent, dict) and ent.get("status") in ("present", "possible", "trace")]
    return out or None


