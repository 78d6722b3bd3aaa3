"""make_scan: a synthetic MA-XRF scan written streaming, with its ground truth."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xraydb
from numpy.typing import DTypeLike

from maxrf import physics
from maxrf.errors import OutputExistsError, ParameterError
from maxrf.synth.model import (
    _MAX_PILEUP_ELEMENTS,
    _SCATTER_NAMES,
    DEFAULT_ELEMENTS,
    _base_block,
    _check_float,
    _check_int,
    _Model,
    _pileup_coefficient,
)
from maxrf.synth.painting import _add_particle, _add_speckles, _paint_maps, _scatter_maps
from maxrf.synth.truth import Truth, _save_truth, _stem


@dataclass
class _Options:
    """make_scan's options, checked."""

    height: int
    width: int
    channels: int
    seed: int
    n_speckles: int
    tube_kv: float
    counts: float
    pile: float
    out_dtype: np.dtype
    block_rows: int


def _check_options(height: int, width: int, channels: int, seed: int, n_speckles: int,
                   tube_kv: float, counts_per_pixel: float, pileup: bool | float,
                   dtype: DTypeLike, block_rows: int | None) -> _Options:
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    channels = _check_int("channels", channels, 16)
    seed = _check_int("seed", seed, 0)
    n_speckles = _check_int("n_speckles", n_speckles, 0)
    tube_kv = _check_float("tube_kv", tube_kv, 5.0, 100.0)
    counts = _check_float("counts_per_pixel", counts_per_pixel, 1e-6, 1e12)
    pile = _pileup_coefficient(pileup)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"dtype {dtype!r} is not a numpy dtype") from None
    if out_dtype.kind not in "uif" or out_dtype.itemsize not in (1, 2, 4, 8):
        raise ParameterError(f"dtype must be an integer or float type, got {dtype!r}")
    out_dtype = out_dtype.newbyteorder("=")
    if block_rows is None:
        block_rows = max(1, min(height, (1 << 20) // (width * channels)))
    block_rows = _check_int("block_rows", block_rows, 1)
    return _Options(height, width, channels, seed, n_speckles, tube_kv, counts, pile, out_dtype,
                    block_rows)


@dataclass
class _Instrument:
    """Calibration, scattering angle, resolution and anode of a synthetic scan."""

    gain: float
    offset: float
    theta: float
    fwhm6: float
    anode: str
    energies: np.ndarray


def _draw_instrument(rng: np.random.Generator, opt: _Options, gain_keV: float | None,
                     offset_keV: float | None, theta_deg: float | None,
                     fwhm_at_6keV: float | None, anode: str) -> _Instrument:
    # draw every random instrument parameter first, so that passing one explicitly does
    # not change the rest of the scan
    r_gain, r_offset, r_theta, r_fwhm = (
        rng.uniform(0.97, 1.03),
        rng.uniform(-1.0, -0.1),
        rng.uniform(85.0, 115.0),
        rng.uniform(0.130, 0.160),
    )
    gain = r_gain * (opt.tube_kv + 1.5) / opt.channels if gain_keV is None else gain_keV
    gain = _check_float("gain_keV", gain, 1e-6, 10.0)
    if gain <= 0:
        raise ParameterError(f"gain_keV must be > 0, got {gain_keV!r}")
    offset = r_offset if offset_keV is None else _check_float("offset_keV", offset_keV, -1.0, 0.3)
    theta = r_theta if theta_deg is None else _check_float("theta_deg", theta_deg, 0.0, 180.0)
    fwhm6 = r_fwhm if fwhm_at_6keV is None else float(fwhm_at_6keV)
    physics.fwhm_keV(5.9, fwhm6)  # validates
    anode_sym = physics.normalize_element(anode)
    physics.anode_lines(anode_sym, opt.tube_kv)  # validates
    energies = offset + gain * np.arange(opt.channels)
    return _Instrument(gain, offset, theta, fwhm6, anode_sym, energies)


def _choose_elements(rng: np.random.Generator, elements: Iterable[str] | None, n_speckles: int,
                     speckle_element: str | None, particle: bool,
                     particle_elements: Sequence[str]
                     ) -> tuple[list[str], str | None, tuple[str, ...], list[str]]:
    """``painted, speckle element, particle elements, all elements`` (by atomic number)."""
    if elements is None:
        extra = [el for el in DEFAULT_ELEMENTS if el not in ("Ca", "Fe")]
        k = int(rng.integers(2, len(extra) + 1))
        chosen = rng.choice(len(extra), size=k, replace=False)
        painted = ["Ca", "Fe"] + [extra[i] for i in sorted(chosen)]
    else:
        if isinstance(elements, str):
            elements = [elements]
        painted = []
        for el in elements:
            sym = physics.normalize_element(el)
            if sym not in painted:
                painted.append(sym)
    speckle_el = None
    if n_speckles > 0 and speckle_element is not None:
        speckle_el = physics.normalize_element(speckle_element)
    part_els: tuple[str, ...] = ()
    if particle:
        part_els = tuple(dict.fromkeys(physics.normalize_element(e) for e in particle_elements))
        if not part_els:
            raise ParameterError("particle_elements is empty (pass particle=False for none)")
    all_els = list(dict.fromkeys(painted + ([speckle_el] if speckle_el else []) + list(part_els)))
    all_els.sort(key=xraydb.atomic_number)
    if not all_els:
        raise ParameterError("no elements: give at least one element")
    return painted, speckle_el, part_els, all_els


def _check_templates(all_els: Sequence[str], inst: _Instrument, tube_kv: float) -> None:
    """Every element must have lines excited on the energy axis."""
    energies = inst.energies
    for el in all_els:
        t = physics.element_spectrum(el, energies, tube_kv=tube_kv, fwhm_at_6keV=inst.fwhm6)
        if t.sum() < 0.5:
            raise ParameterError(
                f"element {el} has no lines excited at {tube_kv} kV on the energy axis "
                f"{energies[0]:.2f}..{energies[-1]:.2f} keV"
            )


def _scaled_model(maps: dict[str, np.ndarray], scatter: dict[str, np.ndarray],
                  all_els: list[str], inst: _Instrument, opt: _Options
                  ) -> tuple[_Model, list[str]]:
    """The scan's model (pile-up of its strongest elements) and the maps scaled in place to
    the requested mean counts on the axis (without pile-up, a ~0.1 % term)."""
    pile_els = []
    if opt.pile > 0:
        strength = {el: float(maps[el].mean()) for el in all_els}
        pile_els = sorted(all_els, key=lambda e: -strength[e])[:_MAX_PILEUP_ELEMENTS]
        pile_els = [el for el in all_els if el in pile_els]  # keep Z order
    model = _Model(
        inst.energies,
        all_els,
        anode=inst.anode,
        tube_kv=opt.tube_kv,
        theta_deg=inst.theta,
        fwhm_at_6keV=inst.fwhm6,
        pileup=opt.pile,
        pileup_elements=pile_els,
    )
    on_axis = model.templates.sum(axis=1)
    total = sum(maps[el].mean() * on_axis[i] for i, el in enumerate(all_els))
    total += sum(
        scatter[n].mean() * on_axis[len(all_els) + i] for i, n in enumerate(_SCATTER_NAMES)
    )
    scale = opt.counts / total
    for arr in list(maps.values()) + list(scatter.values()):
        arr *= scale
    return model, pile_els


def _stream_counts(stem: Path, opt: _Options, model: _Model, all_els: list[str],
                   maps32: Mapping[str, np.ndarray], scatter32: Mapping[str, np.ndarray],
                   calibration: tuple[float, float] | None, overwrite: bool) -> tuple[Path, Path]:
    """Draw the Poisson counts a block of rows at a time and write the ripple pair."""
    from maxrf.io.ripple import RippleWriter

    h, w, channels, seed, out_dtype = opt.height, opt.width, opt.channels, opt.seed, opt.out_dtype
    limit = np.iinfo(out_dtype).max if out_dtype.kind in "ui" else None
    workers = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        RippleWriter(
            stem.with_name(stem.name + ".rpl"),
            (h, w, channels),
            out_dtype,
            calibration=calibration,
            overwrite=overwrite,
        ) as writer,
    ):
        for r0 in range(0, h, opt.block_rows):
            r1 = min(h, r0 + opt.block_rows)
            base = _base_block(all_els, maps32, scatter32, slice(r0, r1))
            lam = model.expected(base, opt.counts).reshape(r1 - r0, w, channels)
            block = np.empty((r1 - r0, w, channels), dtype=out_dtype)

            def draw(i: int, lam=lam, block=block, r0=r0) -> None:
                cnt = np.random.default_rng([seed, 1, r0 + i]).poisson(lam[i])
                if limit is not None:
                    np.minimum(cnt, limit, out=cnt)
                block[i] = cnt

            # numpy releases the GIL while sampling: rows in parallel threads
            list(pool.map(draw, range(r1 - r0)))
            del lam
            writer.write_rows(r0, block)
        return writer.rpl_path, writer.raw_path


def _truth_outputs(stem: Path, overwrite: bool) -> tuple[Path, Path]:
    """The ``.truth.json`` and ``.truth.npz`` paths, refused if present without ``overwrite``."""
    paths = (stem.with_name(stem.name + ".truth.json"), stem.with_name(stem.name + ".truth.npz"))
    if not overwrite:
        for p in paths:
            if p.exists():
                raise OutputExistsError("already exists (pass overwrite=True to replace it)", p)
    return paths


def _write_scan(rng: np.random.Generator, stem: Path, truth_paths: tuple[Path, Path],
                opt: _Options, inst: _Instrument,
                chosen: tuple[list[str], str | None, tuple[str, ...], list[str]],
                header_calibration: bool, overwrite: bool) -> Truth:
    """Paint the maps, stream the counts, save the truth (make_scan once checked)."""
    painted, speckle_el, part_els, all_els = chosen
    h, w, counts = opt.height, opt.width, opt.counts
    maps = _paint_maps(rng, painted, all_els, h, w, counts)
    scatter = _scatter_maps(rng, maps, all_els, h, w, counts)
    model, pile_els = _scaled_model(maps, scatter, all_els, inst, opt)
    particle_pixel = _add_particle(rng, maps, part_els, h, w, counts)
    centroids: list[tuple[float, float]] = []
    sizes: list[int] = []
    if speckle_el is not None:
        centroids, sizes = _add_speckles(rng, maps[speckle_el], opt.n_speckles, particle_pixel,
                                         counts)
    maps32 = {el: maps[el].astype(np.float32) for el in all_els}
    scatter32 = {n: scatter[n].astype(np.float32) for n in _SCATTER_NAMES}
    del maps, scatter
    calibration = (inst.gain, inst.offset) if header_calibration else None
    rpl_path, raw_path = _stream_counts(stem, opt, model, all_els, maps32, scatter32, calibration,
                                        overwrite)
    truth = Truth(
        elements=all_els,
        maps=maps32,
        gain_keV=float(inst.gain),
        offset_keV=float(inst.offset),
        anode=inst.anode,
        tube_kv=float(opt.tube_kv),
        theta_deg=float(inst.theta),
        fwhm_at_6keV=float(inst.fwhm6),
        energies=inst.energies,
        speckle_centroids=np.array(centroids, dtype=float).reshape(-1, 2),
        speckle_element=speckle_el,
        particle_pixel=particle_pixel,
        particle_elements=part_els,
        seed=opt.seed,
        shape=(h, w, opt.channels),
        scatter_maps=scatter32,
        pileup=opt.pile,
        pileup_elements=pile_els,
        counts_per_pixel=float(counts),
        dtype=opt.out_dtype.name,
        header_calibration=bool(header_calibration),
        speckle_sizes=np.array(sizes, dtype=int),
        rpl_path=str(rpl_path),
    )
    try:
        _save_truth(truth, *truth_paths)
    except BaseException:
        for p in (Path(rpl_path), Path(raw_path), *truth_paths):
            try:
                p.unlink()
            except OSError:
                pass
        raise
    return truth


def make_scan(
    path: str | os.PathLike, *, height: int = 64, width: int = 80, channels: int = 2048,
    seed: int = 0, elements: Iterable[str] | None = None, gain_keV: float | None = None,
    offset_keV: float | None = None, anode: str = "Rh", tube_kv: float = 40.0,
    theta_deg: float | None = None, counts_per_pixel: float = 3000,
    fwhm_at_6keV: float | None = None, dtype: DTypeLike = "uint16",
    header_calibration: bool = False, n_speckles: int = 8, speckle_element: str | None = "Fe",
    particle: bool = True, particle_elements: Sequence[str] = ("Cu", "Zn"),
    pileup: bool | float = True, block_rows: int | None = None, overwrite: bool = False,
) -> Truth:
    """Write a synthetic MA-XRF scan (ripple pair) with its ground truth, streaming.

    Parameters
    ----------
    path : str or os.PathLike
        Output path, with or without ``.rpl``; writes ``<stem>.rpl``, ``<stem>.raw``,
        ``<stem>.truth.npz`` and ``<stem>.truth.json``.
    height, width, channels : int
        Cube shape (pixels, pixels, channels).
    seed : int
        Random seed (>= 0); everything random derives from it.
    elements : iterable of str, optional
        Elements painted with strokes and blobs. Default: Ca, Fe and a random subset of
        K, Ti, Mn, Cu, Zn, Pb. The speckle and particle elements are added if missing
        (then present only in the speckles / the particle). Every element needs lines on
        the energy axis.
    gain_keV : float, optional
        keV per channel; default ``U(0.97, 1.03) * (tube_kv + 1.5) / channels``.
    offset_keV : float, optional
        Energy of channel 0 (keV), in [-1, 0.3]; default ``U(-1.0, -0.1)``.
    anode : {'Rh', 'Mo', 'W', 'Ag', 'Cr', 'Cu'}
        Tube anode.
    tube_kv : float
        Tube voltage (kV), 5..100.
    theta_deg : float, optional
        Scattering angle (degrees); default ``U(85, 115)``.
    counts_per_pixel : float
        Mean expected counts per pixel on the energy axis (before speckles / particle).
    fwhm_at_6keV : float, optional
        Detector FWHM (keV) at 5.9 keV; default ``U(0.130, 0.160)``.
    dtype : numpy dtype
        Stored type (``'uint16'`` default; counts above the type's maximum are clipped).
    header_calibration : bool
        Write the calibration into the header (Bruker keys); otherwise no calibration.
    n_speckles, speckle_element : int, str or None
        Number (0 for none) and element of the speckles.
    particle, particle_elements : bool, sequence of str
        Add the single-pixel particle, and its elements.
    pileup : bool or float
        Pile-up coefficient (``True``: 0.004, ``False``: none).
    block_rows : int, optional
        Rows per written block; default so that a block holds about 2**20 values.
    overwrite : bool
        Replace existing outputs; otherwise :class:`~maxrf.errors.OutputExistsError`.

    Returns
    -------
    Truth
        The ground truth (also saved beside the scan).

    Raises
    ------
    ParameterError
        Invalid option (e.g. no room for the speckles, an element without lines on the axis).
    OutputExistsError, OutputLocationError, DiskFullError
        The output cannot be written; nothing is left behind.
    """
    opt = _check_options(height, width, channels, seed, n_speckles, tube_kv, counts_per_pixel,
                         pileup, dtype, block_rows)
    stem = _stem(path)
    truth_paths = _truth_outputs(stem, overwrite)
    rng = np.random.default_rng(opt.seed)
    inst = _draw_instrument(rng, opt, gain_keV, offset_keV, theta_deg, fwhm_at_6keV, anode)
    chosen = _choose_elements(rng, elements, opt.n_speckles, speckle_element, particle,
                              particle_elements)
    _check_templates(chosen[3], inst, opt.tube_kv)
    return _write_scan(rng, stem, truth_paths, opt, inst, chosen, header_calibration, overwrite)
