"""Convert a ripple scan (.rpl/.raw) into a DataStack in one streaming pass.

The raw file is read once, block by block; each block is optionally smoothed along the
spectral axis, written as a compressed, checksummed zarr chunk, and fed to the max,
argmax and mean spectrum reductions in the same pass (see :mod:`maxrf.engine`).
The store is built in a hidden sibling folder and renamed into place only when
complete, so an interrupted convert leaves nothing that opens.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from maxrf import engine, interrupt
from maxrf.engine import Block
from maxrf.errors import CalibrationError, OutputExistsError, ParameterError
from maxrf.outputs import check_new_output
from maxrf.store import (
    DEFAULT_COMPRESSION,
    CubeSink,
    DataStack,
    codecs_for,
    create_cube,
    disk_errors,
    finish_store,
    is_datastack,
    write_layer,
)
from maxrf.types import ClientLike

PARTIAL = ".partial-"


class ScanSource:
    """Engine source over a ripple scan, with optional flips (picklable)."""

    def __init__(self, scan: Any, block: tuple[int, int], flip_h: bool, flip_v: bool):
        self.scan = scan
        self.shape = tuple(scan.shape)
        self.block = block
        self.flip_h = flip_h
        self.flip_v = flip_v

    PREFETCH_BYTES = 32 * 2**20
    """How far ahead of a block read the reader is asked to fetch (bytes of whole rows):
    the blocks the engine's threads take next, so a cold file's reads overlap the work."""

    PREFETCH_THREAD = True

    def blocks(self) -> list[Block]:
        return engine.tile_blocks(self.shape[0], self.shape[1], *self.block)

    def _rows(self, rows: slice) -> slice:
        h = self.shape[0]
        return slice(h - rows.stop, h - rows.start) if self.flip_v else rows

    def _prefetch(self, block: Block) -> None:
        prefetch = getattr(self.scan, "prefetch", None)
        if prefetch is None or block.cols.stop != self.shape[1]:  # after a row's last block
            return
        h, w, c = self.shape
        ahead = max(1, self.PREFETCH_BYTES // max(1, w * c * np.dtype(self.scan.dtype).itemsize))
        start, stop = block.rows.stop, min(h, block.rows.stop + ahead)
        # only the rows not asked for yet (best effort across threads): the windows of
        # consecutive blocks overlap; a new pass (rows far behind) starts afresh
        asked = getattr(self, "_asked", 0)
        if asked > stop or asked < start - ahead:
            asked = start
        if max(start, asked) < stop:
            rows = self._rows(slice(max(start, asked), stop))
            if self.PREFETCH_THREAD:
                # the WILLNEED calls block while the kernel queues the reads (0.7 s per
                # cold GiB summed): off the engine's threads, which compute meanwhile
                threading.Thread(target=prefetch, args=(rows,), daemon=True).start()
            else:
                prefetch(rows)
        self._asked = max(asked, stop)

    def read_block(self, block: Block) -> np.ndarray:
        w = self.shape[1]
        rows, cols = self._rows(block.rows), block.cols
        if self.flip_h:
            cols = slice(w - cols.stop, w - cols.start)
        self._prefetch(block)
        view = getattr(self.scan, "view_block", None)
        if view is not None and not (self.flip_v or self.flip_h):
            # no copy: the engine encodes and reduces the file's pages in place and drops
            # the block before taking the next (a copy cost 0.17-0.5 CPU s/GiB, more than
            # the summary spectra: DECISIONS["zero_copy_read"] in benchmarks/bench_convert.py)
            return view(rows, cols)
        data = self.scan.read_block(rows, cols)
        if self.flip_v:
            data = data[::-1]
        if self.flip_h:
            data = data[:, ::-1]
        return np.ascontiguousarray(data)


class Smooth:
    """Gaussian smoothing along the spectral axis (scipy.ndimage.gaussian_filter1d), float32."""

    def __init__(self, sigma: float):
        self.sigma = float(sigma)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        from scipy.ndimage import gaussian_filter1d

        return gaussian_filter1d(data.astype(np.float32), self.sigma, axis=-1)


ZarrSink = CubeSink  # the engine sink of convert, defined with the store


class HeaderWarning(UserWarning):
    """Something in the scan's header was not used (unknown key, ignored misspelling)."""


def default_output(scan_path: str | os.PathLike) -> Path:
    """``SCAN.datastack`` next to ``SCAN.rpl``."""
    p = Path(scan_path)
    return p.with_suffix(".datastack")


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing output (unless ``overwrite``), one that is not a datastack, or a
    missing/unwritable folder."""
    check_new_output(out, overwrite)
    if out.exists() and not is_datastack(out):
        raise OutputExistsError("output exists and is not a datastack; refusing to replace it", out)


def _clean_stale_partials(out: Path) -> None:
    """Remove partial stores of convert runs that died (their process is gone)."""
    prefix = f".{out.name}{PARTIAL}"
    for child in out.parent.glob(prefix + "*"):
        pid = child.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def convert(
    scan_path: str | os.PathLike, out: str | os.PathLike | None = None, *,
    sigma: float = 0.0, flip_horizontal: bool = False, flip_vertical: bool = False,
    overwrite: bool = False, calibrate: bool = True, anode: str = "Rh", tube_kv: float = 40.0,
    calibration: str | None = None, manual: str | None = None, progress: bool = False,
    client: ClientLike = None, budget: int | None = None, dataset: str | None = None,
    compression: str = DEFAULT_COMPRESSION, lenient: bool = False, seed_max: bool = False,
) -> DataStack:
    """Convert a scan (any format :func:`maxrf.io.open_scan` reads) into a DataStack in one pass.

    Parameters
    ----------
    scan_path : path
        The scan: ``.rpl`` (or ``.raw``), CRONO HDF5, Bruker ``.bcf``, HDF5 file or zarr store.
    out : path, optional
        The ``.datastack`` folder to create; default next to the scan.
    sigma : float
        Gaussian smoothing along the spectral axis, in channels (0 = none; the cube is
        then stored in its original integer type, else as float32).
    flip_horizontal, flip_vertical : bool
        Mirror the image left-right / top-bottom.
    overwrite : bool
        Replace an existing output (atomically: the old store stays until the new one is complete).
    calibrate : bool
        Find the energy calibration from the spectra when the header has none.
    anode, tube_kv : str, float
        X-ray tube anode element and voltage (kV), used by the calibration.
    calibration : {'header', 'auto', 'manual'}, optional
        Which calibration to store: the header's (compared with the automatic one), the
        automatic one, or ``manual`` (``manual="CH1:KEV1,CH2:KEV2"``). Default: the header's
        when it has one, else automatic. A doubtful or failed verdict is a warning and is
        recorded in the ``calibration`` layer.
    manual : str, optional
        ``"CH1:KEV1,CH2:KEV2"`` for ``calibration='manual'``.
    progress : bool
        Show progress (a bar on a terminal, else a line per 10 %).
    client : dask.distributed.Client or str, optional
        Run on this cluster (or scheduler address) instead of the local threads.
    budget : int, optional
        Memory budget for blocks in flight, bytes (default 256 MiB or ``MAXRF_BUDGET_MB``).
    dataset : str, optional
        The cube's path inside an HDF5 file or zarr store (``--dataset``).
    compression : {'lz4', 'zstd', 'none'}
        Cube compression (:data:`maxrf.store.COMPRESSIONS`); every chunk keeps its crc32c.
    lenient : bool
        Convert a scan whose header has a misspelt-looking key (``byte-ordr``) anyway, with a
        :class:`HeaderWarning`; by default a :class:`maxrf.errors.ScanFormatError` names the
        likely key. Header keys not used are a :class:`HeaderWarning` either way.
    seed_max : bool
        Also compute the seed's max spectrum (the max over pixels of the cube smoothed by a
        Gaussian of 7 channels, :mod:`maxrf.seed_spectrum`) in the same pass, which
        ``ds.max_spectrum()`` returns. Off by default: only that seed call uses it, and it
        costs ~0.9 CPU s/GiB of convert's ~2.3 (benchmarks/results/convert.json); the first
        ``ds.max_spectrum()`` call computes it then (one pass over the stored cube) and
        stores it. Ignored with ``sigma`` > 0 (the max spectrum is then already smoothed).

    Returns
    -------
    DataStack
        The new store, opened read-only.
    """
    if sigma < 0 or not np.isfinite(sigma):
        raise ParameterError(f"--sigma must be >= 0 channels, got {sigma}")
    codecs_for(np.dtype(np.uint16), compression)  # refuses a bad compression before any work
    scan = _open_scan(scan_path, dataset, lenient)
    out = _output_path(out, scan, overwrite)
    _check_calibration_choice(scan, calibration, manual)
    _clean_stale_partials(out)
    tmp = out.parent / f".{out.name}{PARTIAL}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        with disk_errors(out):
            _build(tmp, scan, budget, sigma, flip_horizontal, flip_vertical, progress, client,
                   compression, seed_max)
            _store_calibration(tmp, scan, calibration, calibrate, anode, tube_kv, manual)
            interrupt.check()  # an interrupt swallowed late: stop rather than publish
            _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DataStack(out)


def _output_path(out: str | os.PathLike | None, scan: Any, overwrite: bool) -> Path:
    """The ``.datastack`` folder to write (default next to the scan), checked."""
    out = Path(out) if out is not None else default_output(scan.path)
    if out.suffix != ".datastack":
        out = out.with_name(out.name + ".datastack")
    check_output(out, overwrite)
    return out


def _store_calibration(tmp: Path, scan: Any, calibration: str | None, calibrate: bool,
                       anode: str, tube_kv: float, manual: str | None) -> None:
    """The calibration layer: the header's, the automatic or the manual one (see convert)."""
    mode = calibration or ("header" if scan.calibration is not None else "auto")
    if mode == "header":
        _write_header_calibration(tmp, scan.calibration, scan.shape[2], anode, tube_kv)
    elif mode == "manual" or calibrate:
        _auto_calibrate(tmp, anode, tube_kv, manual)


def _open_scan(scan_path: str | os.PathLike, dataset: str | None, lenient: bool) -> Any:
    """The scan's reader; what a ripple header did not use is reported as a HeaderWarning."""
    from maxrf.io import open_scan

    scan = open_scan(scan_path, dataset, lenient=lenient)
    header = getattr(scan, "header", None)  # ripple headers report what they did not use
    for text in getattr(header, "warnings", ()):
        warnings.warn(text, HeaderWarning, stacklevel=3)
    unknown = getattr(header, "unknown_keys", ())
    if unknown:
        warnings.warn(f"header keys not used: {', '.join(unknown)}", HeaderWarning, stacklevel=3)
    return scan


def _check_calibration_choice(scan: Any, calibration: str | None, manual: str | None) -> None:
    if calibration not in (None, "header", "auto", "manual"):
        raise ParameterError(f"calibration must be 'header', 'auto' or 'manual', got {calibration!r}")
    if calibration == "header" and scan.calibration is None:
        raise ParameterError(f"{scan.path}: the header carries no calibration; use 'auto' or 'manual'")
    if (calibration == "manual") != (manual is not None):
        raise ParameterError("a manual calibration needs calibration='manual' and the CH:KEV pairs")


def _build(tmp: Path, scan: Any, budget: int | None, sigma: float, flip_h: bool, flip_v: bool,
           progress: bool, client: ClientLike, compression: str = DEFAULT_COMPRESSION,
           seed_max: bool = False) -> None:
    """The cube, its summary spectra and the manifest, in one pass over the scan."""
    store_dtype = np.dtype(np.float32) if sigma > 0 else np.dtype(scan.dtype).newbyteorder("=")
    block = engine.block_shape(scan.shape, max(4, store_dtype.itemsize), budget)
    w = scan.shape[1]
    with interrupt.deferred():  # zarr writes on its own thread: let it finish first
        sink = create_cube(tmp, scan.shape, store_dtype, block, compression)
    source = ScanSource(scan, block, flip_h, flip_v)
    reductions: dict[str, engine.Reduction]
    if sigma == 0 and store_dtype.kind in "ui":  # counts: all summary spectra in one walk
        from maxrf.summary import SummarySpectra

        reductions = {"summary": SummarySpectra(w, smoothed=seed_max)}
    else:
        reductions = {"max": engine.MaxSpectrum(w), "mean": engine.MeanSpectrum()}
        if sigma == 0 and seed_max:  # the seed's (smoothed) max spectrum, from the same reads
            from maxrf.seed_spectrum import SmoothedMax

            reductions["smax"] = SmoothedMax()
    result = engine.run(
        source,
        reductions,
        client=client,
        progress=progress,
        transform=Smooth(sigma) if sigma > 0 else None,
        sink=sink,
        description="convert",
    )
    result = result.pop("summary", None) or result
    max_values, argmax = result["max"]
    metadata = {
        "source": scan.source_info(),
        "header": scan.metadata,
        "options": {"sigma": sigma, "flip_horizontal": flip_h, "flip_vertical": flip_v,
                    "compression": compression},
        "source_dtype": str(np.dtype(scan.dtype)),
        "header_calibration": None if scan.calibration is None else list(scan.calibration),
    }
    spectra = {"max_spectrum": max_values.astype(np.float64), "sum_spectrum": result["mean"],
               "argmax_pixels": argmax}
    if "smax" in result:
        spectra["smoothed_max_spectrum"] = result["smax"]
    with interrupt.deferred():
        finish_store(tmp, spectra, metadata)


def _write_header_calibration(
    tmp: Path, cal: tuple[float, float], n: int, anode: str, tube_kv: float
) -> None:
    """The header's calibration, stored in the same layer shape as a found one, with the
    comparison against the automatic calibration as its verdict."""
    from maxrf.calibration import header_calibration
    from maxrf.calibration.verdict import check_header_against_auto

    header = header_calibration(*cal)
    ds = DataStack(tmp)
    sum_y, max_y = np.asarray(ds.sum_spectrum), np.asarray(ds.max_spectrum)
    check_header_against_auto(header, sum_y, max_y, anode, tube_kv)
    with interrupt.deferred():
        write_layer(tmp, "calibration", {"energies": header.energies(n)}, header.to_dict())
    _warn_verdict(header)


def _auto_calibrate(tmp: Path, anode: str, tube_kv: float, manual: str | None = None) -> None:
    """Calibrate from the spectra (or by hand); a failure is recorded, never fatal."""
    try:
        from maxrf.calibration import calibrate_datastack
    except ImportError:  # calibration not installed in this build
        return
    try:
        cal = calibrate_datastack(DataStack(tmp), anode=anode, tube_kv=tube_kv, manual=manual)
    except CalibrationError as exc:
        warnings.warn(f"automatic calibration failed: {exc}; run 'maxrf calibrate'", stacklevel=3)
        return
    _warn_verdict(cal)


def _warn_verdict(cal: Any) -> None:
    """A doubtful or failed calibration is a visible warning, never a silent choice."""
    if cal.quality in ("doubtful", "failed"):
        warnings.warn(f"{cal.summary()}; check it with 'maxrf calibrate' or give --calibration manual",
                      stacklevel=4)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Put the finished store at ``out``; an existing ``out`` is replaced atomically.

    With RENAME_EXCHANGE a crash at any moment leaves either the old or the new store at
    ``out`` (the other one sits in the hidden partial folder, removed by the next
    convert). Without it, two renames leave a short window with no store at ``out``.
    """
    if not out.exists():
        os.replace(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    trash = out.parent / f".{out.name}.old-{secrets.token_hex(3)}"
    os.replace(out, trash)
    try:
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(trash, out)
        raise
    shutil.rmtree(trash, ignore_errors=True)
