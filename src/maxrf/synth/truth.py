"""Ground truth of a synthetic scan: :class:`Truth`, saving and loading it, expected counts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maxrf.errors import MissingFileError
from maxrf.synth.model import _SCATTER_NAMES, _TRUTH_VERSION, _base_block, _Model


@dataclass
class Truth:
    """Ground truth of a synthetic scan.

    Attributes
    ----------
    elements : list of str
        Elements present (by atomic number).
    maps : dict of str to numpy.ndarray
        ``(H, W)`` float32 expected counts of each element's lines (total area of its
        template, :func:`maxrf.physics.element_spectrum`).
    gain_keV, offset_keV : float
        Calibration: energy of channel ``i`` is ``offset_keV + gain_keV * i`` (keV).
    anode, tube_kv, theta_deg : str, float, float
        The simulated instrument: tube anode (element symbol), tube voltage (kV) and
        scattering angle (degrees), the truth that calibration and identification estimate.
    fwhm_at_6keV : float
        Detector FWHM (keV) at 5.9 keV.
    energies : numpy.ndarray
        ``(C,)`` channel energies (keV).
    speckle_centroids : numpy.ndarray
        ``(N, 2)`` float ``[row, col]`` centroids of the speckles.
    speckle_element : str or None
        Element of the speckles (``None`` without speckles).
    particle_pixel : tuple of int or None
        ``(row, col)`` of the single-pixel particle.
    particle_elements : tuple of str
        Elements of the particle.
    seed : int
        Random seed.
    shape : tuple of int
        ``(H, W, C)``.
    scatter_maps : dict of str to numpy.ndarray
        ``(H, W)`` float32 total areas (counts) of ``'rayleigh'``, ``'compton'``,
        ``'continuum'`` and ``'zero'``.
    pileup : float
        Pile-up coefficient (0 without pile-up).
    pileup_elements : list of str
        Elements whose main lines pile up.
    counts_per_pixel : float
        Requested mean counts per pixel.
    dtype : str
        Stored dtype.
    header_calibration : bool
        Whether the calibration was written into the ``.rpl`` header.
    speckle_sizes : numpy.ndarray
        ``(N,)`` pixels per speckle.
    rpl_path : str or None
        The header written.
    """

    elements: list[str]
    maps: dict[str, np.ndarray]
    gain_keV: float
    offset_keV: float
    anode: str
    tube_kv: float
    theta_deg: float
    fwhm_at_6keV: float
    energies: np.ndarray
    speckle_centroids: np.ndarray
    speckle_element: str | None
    particle_pixel: tuple[int, int] | None
    particle_elements: tuple[str, ...]
    seed: int
    shape: tuple[int, int, int]
    scatter_maps: dict[str, np.ndarray] = field(default_factory=dict)
    pileup: float = 0.0
    pileup_elements: list[str] = field(default_factory=list)
    counts_per_pixel: float = 0.0
    dtype: str = "uint16"
    header_calibration: bool = False
    speckle_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    rpl_path: str | None = None

    @property
    def calibration(self) -> tuple[float, float]:
        """``(gain_keV, offset_keV)``."""
        return (self.gain_keV, self.offset_keV)

    def channel(self, keV: float | np.ndarray) -> float | np.ndarray:
        """Fractional channel index of an energy (keV)."""
        out = (np.asarray(keV, dtype=float) - self.offset_keV) / self.gain_keV
        return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- helpers
def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    name = p.name
    for suffix in (".truth.json", ".truth.npz", ".rpl", ".raw"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    return p


def _save_truth(truth: Truth, json_path: Path, npz_path: Path) -> None:
    arrays = {f"map_{el}": truth.maps[el] for el in truth.elements}
    arrays.update({f"scatter_{n}": truth.scatter_maps[n] for n in truth.scatter_maps})
    arrays["energies"] = np.asarray(truth.energies)
    arrays["speckle_centroids"] = truth.speckle_centroids
    arrays["speckle_sizes"] = truth.speckle_sizes
    meta = {
        "version": _TRUTH_VERSION,
        "elements": truth.elements,
        "gain_keV": truth.gain_keV,
        "offset_keV": truth.offset_keV,
        "anode": truth.anode,
        "tube_kv": truth.tube_kv,
        "theta_deg": truth.theta_deg,
        "fwhm_at_6keV": truth.fwhm_at_6keV,
        "speckle_element": truth.speckle_element,
        "speckle_centroids": truth.speckle_centroids.tolist(),
        "particle_pixel": list(truth.particle_pixel) if truth.particle_pixel else None,
        "particle_elements": list(truth.particle_elements),
        "seed": truth.seed,
        "shape": list(truth.shape),
        "pileup": truth.pileup,
        "pileup_elements": truth.pileup_elements,
        "counts_per_pixel": truth.counts_per_pixel,
        "dtype": truth.dtype,
        "header_calibration": truth.header_calibration,
        "rpl_path": truth.rpl_path,
    }
    tmp_npz = npz_path.with_name(f".{npz_path.name}.{os.getpid()}.tmp.npz")
    tmp_json = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
    try:
        np.savez(tmp_npz, **arrays)
        tmp_json.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_npz, npz_path)
        os.replace(tmp_json, json_path)
    finally:
        for p in (tmp_npz, tmp_json):
            try:
                p.unlink()
            except OSError:
                pass


def load_truth(path: str | os.PathLike) -> Truth:
    """Read the ground truth written by :func:`make_scan`.

    Parameters
    ----------
    path : str or os.PathLike
        The scan's ``.rpl`` / ``.raw``, its stem, or a ``.truth.json`` / ``.truth.npz``.

    Returns
    -------
    Truth

    Raises
    ------
    MissingFileError
        The truth files are missing.
    """
    stem = _stem(path)
    json_path = stem.with_name(stem.name + ".truth.json")
    npz_path = stem.with_name(stem.name + ".truth.npz")
    for p in (json_path, npz_path):
        if not p.is_file():
            raise MissingFileError("synthetic-scan truth file not found", p)
    meta = json.loads(json_path.read_text())
    with np.load(npz_path) as z:
        arrays = {k: z[k] for k in z.files}
    elements = list(meta["elements"])
    return Truth(
        elements=elements,
        maps={el: arrays[f"map_{el}"] for el in elements},
        gain_keV=float(meta["gain_keV"]),
        offset_keV=float(meta["offset_keV"]),
        anode=meta["anode"],
        tube_kv=float(meta["tube_kv"]),
        theta_deg=float(meta["theta_deg"]),
        fwhm_at_6keV=float(meta["fwhm_at_6keV"]),
        energies=arrays["energies"],
        speckle_centroids=arrays["speckle_centroids"].reshape(-1, 2),
        speckle_element=meta["speckle_element"],
        particle_pixel=tuple(meta["particle_pixel"]) if meta["particle_pixel"] else None,
        particle_elements=tuple(meta["particle_elements"]),
        seed=int(meta["seed"]),
        shape=tuple(meta["shape"]),
        scatter_maps={
            n: arrays[f"scatter_{n}"] for n in _SCATTER_NAMES if f"scatter_{n}" in arrays
        },
        pileup=float(meta["pileup"]),
        pileup_elements=list(meta["pileup_elements"]),
        counts_per_pixel=float(meta["counts_per_pixel"]),
        dtype=meta["dtype"],
        header_calibration=bool(meta["header_calibration"]),
        speckle_sizes=arrays["speckle_sizes"],
        rpl_path=meta.get("rpl_path"),
    )


def _model_from_truth(truth: Truth) -> _Model:
    return _Model(
        np.asarray(truth.energies, dtype=float),
        truth.elements,
        anode=truth.anode,
        tube_kv=truth.tube_kv,
        theta_deg=truth.theta_deg,
        fwhm_at_6keV=truth.fwhm_at_6keV,
        pileup=truth.pileup,
        pileup_elements=truth.pileup_elements,
    )


def expected_spectra(truth: Truth, rows: slice | None = None) -> np.ndarray:
    """Noise-free expected counts of a synthetic scan, recomputed from its truth.

    Parameters
    ----------
    truth : Truth
        From :func:`make_scan` or :func:`load_truth`.
    rows : slice, optional
        Rows to compute (all by default; mind the memory for big scans).

    Returns
    -------
    numpy.ndarray
        ``(r, W, C)`` float64 expected counts (before Poisson noise and clipping).
    """
    rows = slice(None) if rows is None else rows
    model = _model_from_truth(truth)
    base = _base_block(truth.elements, truth.maps, truth.scatter_maps, rows)
    lam = model.expected(base, truth.counts_per_pixel)
    h = len(range(*rows.indices(truth.shape[0])))
    return lam.reshape(h, truth.shape[1], truth.shape[2])
