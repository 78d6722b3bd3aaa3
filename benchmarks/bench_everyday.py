"""Everyday use (issue 19): the seed's notebook on raw counts, shared peak list, cost of the
smoothed max spectrum in convert's pass.

On one synthetic drawing (make_scan, 128 x 160 x 2048, raw Poisson counts), measured in
one process:
- convert's pass with and without the smoothed max spectrum reduction (ratio: its cost);
- the seed's ``get_slices(ds.energies(), ds.max_spectrum())`` peaks on the smoothed max vs
  the raw max (the seed's exact raw semantics), and ``get_peakmaps`` time for each;
- the default peak maps vs the hotmax atlas: one list, minimum separation in FWHM units.
"""

from __future__ import annotations

import shutil

import numpy as np

from benchmarks.common import WORK, timed


def main() -> dict:
    import maxrf as maxrf4u
    from maxrf import engine
    from maxrf.convert import ScanSource, convert
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.io.ripple import open_scan
    from maxrf.maps import compute_maps
    from maxrf.peaks import estimate_fwhm_channels
    from maxrf.seed_spectrum import SmoothedMax
    from maxrf.synth import make_scan

    folder = WORK / "everyday"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    truth = make_scan(folder / "scan", height=128, width=160, channels=2048, seed=19,
                      elements=["Ca", "Fe", "Cu", "Zn", "Pb", "Ti", "K", "Mn"], n_speckles=8)
    scan = open_scan(folder / "scan.rpl")
    h, w, c = scan.shape
    rows, cols = engine.block_shape(scan.shape, 4, None)
    src = ScanSource(scan, (rows, cols), False, False)
    base = {"max": engine.MaxSpectrum(w), "mean": engine.MeanSpectrum()}
    t_base, _ = timed(engine.run, src, base)
    t_smax, _ = timed(engine.run, src, {**base, "smax": SmoothedMax()})
    t_base2, _ = timed(engine.run, src, base)
    t_convert, ds = timed(convert, folder / "scan.rpl", folder / "scan.datastack")
    x = ds.energies()
    p_s, _ = maxrf4u.get_slices(x, ds.max_spectrum())
    p_r, _ = maxrf4u.get_slices(x, ds.max_spectrum)
    t_pm_s, _ = timed(maxrf4u.get_peakmaps, ds.maxrf_cube, x, ds.max_spectrum())
    t_pm_r, _ = timed(maxrf4u.get_peakmaps, ds.maxrf_cube, x, np.asarray(ds.max_spectrum))
    atlas = HotmaxAtlas(ds, recompute=True)
    res = compute_maps(ds, peaks=True)
    ch = np.asarray(res.peaks.slices)[:, 1]
    fwhm = estimate_fwhm_channels(np.asarray(ds.max_spectrum, dtype=float))
    return {
        "scan": {"shape": [h, w, c], "elements": list(truth.elements), "MB": h * w * c * 2 / 2**20},
        "convert_pass": {"seconds_without_smoothed_max": min(t_base, t_base2),
                         "seconds_with_smoothed_max": t_smax,
                         "ratio": t_smax / min(t_base, t_base2),
                         "convert_total_seconds": t_convert},
        "seed_notebook": {"peaks_smoothed_max": int(len(p_s)), "peaks_raw_max": int(len(p_r)),
                          "get_peakmaps_seconds_smoothed": t_pm_s,
                          "get_peakmaps_seconds_raw": t_pm_r},
        "peak_list": {"peak_maps": int(len(ch)), "hotmax_peaks": int(len(atlas.peak_channels)),
                      "same_list": bool(np.array_equal(np.sort(atlas.peak_channels), ch)),
                      "min_separation_fwhm": float(np.diff(ch).min() / fwhm) if len(ch) > 1 else None},
    }


if __name__ == "__main__":
    from benchmarks.common import save

    print(save("everyday", main()))
