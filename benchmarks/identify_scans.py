"""Held-out synthetic scans for the identification benchmark, and how a result is scored.

Every scan is drawn from its seed alone (:func:`scan_spec`): a *drawing* (paper: Ca, Fe,
K, a few inks and a brass particle) or a *painting* (3 to 6 pigment elements, a particle
of two of them), 4096 channels, an anode among Rh, Mo, W, Cu with one of its usual tube
voltages, 500 to 5000 counts per pixel, and every third scan forced to hold an overlap
pair (Cu/Zn, Pb/As, Pb/S, Ti/Ba, Hg/Au, Mn/Fe). The identification is given the scan's
calibration with an error within the stated accuracy of a calibration (offset +-10 eV,
gain +-2e-4), so calibration is not under test but its residual error is.

Scoring (:func:`score_scan`):

* an element of the truth is *detectable* when its strongest line stands 5 sigma above
  the counting noise of some pixel's spectrum (the pixel where its map peaks, its speckle,
  the particle): signal counts within +-1 FWHM of the line over the square root of all
  expected counts there (:func:`detectable`);
* precision = true ``present`` calls / all ``present`` calls; recall = detectable truth
  elements called ``present`` / detectable truth elements;
* reliability: every candidate element with a confidence, labelled by the truth;
* instrument: the observed peaks left unexplained that lie on an anode Rayleigh or
  Compton line (K or L) -- must be none.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

PIGMENTS = [
    "S", "K", "Ca", "Ti", "Cr", "Mn", "Fe", "Co", "Cu", "Zn",
    "As", "Se", "Sr", "Cd", "Sn", "Sb", "Ba", "Hg", "Pb", "Au",
]  # fmt: skip
DRAWING_INKS = ["Mn", "Cu", "Zn", "Hg", "Pb", "Ti"]
OVERLAP_PAIRS = [("Cu", "Zn"), ("Pb", "As"), ("Pb", "S"), ("Ti", "Ba"), ("Hg", "Au"), ("Mn", "Fe")]
ANODES = {"Rh": (35.0, 40.0, 50.0), "Mo": (30.0, 40.0, 50.0), "W": (35.0, 40.0, 50.0),
          "Cu": (30.0, 40.0)}
#: seeds used while developing (never in the measured set)
DEV_SEEDS = range(0, 30)
#: seeds of the measured (held-out) set
HOLDOUT_SEED0 = 7000


@dataclass
class ScanSpec:
    """Everything :func:`maxrf.synth.make_scan` needs, drawn from one seed."""

    seed: int
    kind: str
    height: int
    width: int
    anode: str
    tube_kv: float
    counts_per_pixel: float
    elements: list[str]
    particle_elements: list[str]
    speckle_element: str
    forced_pair: list[str]
    offset_error_keV: float
    gain_error: float


def _size(index: int) -> tuple[int, int]:
    """Scan shape by position in the set: one 400 x 400, one 160 x 160, two 96 x 96, some
    64 x 96, the rest 64 x 64 (the range 64..400 is covered; most scans are small to keep the run
    bounded on a shared 2-core machine)."""
    if index == 0:
        return 400, 400
    if index == 1:
        return 160, 160
    if index < 4:
        return 96, 96
    if index % 7 == 0:
        return 64, 96
    return 64, 64


def scan_spec(seed: int, index: int) -> ScanSpec:
    """The scan of ``seed`` (``index``: its position in the set, which fixes its size)."""
    rng = np.random.default_rng(90_000 + seed)
    anode = list(ANODES)[seed % len(ANODES)]
    kv = float(rng.choice(ANODES[anode]))
    kind = "drawing" if seed % 2 == 0 else "painting"
    pool = [el for el in PIGMENTS if el != anode]
    if kind == "drawing":
        inks = [el for el in DRAWING_INKS if el != anode]
        k = int(rng.integers(1, 4))
        els = {"Ca", "Fe", "K"} | set(rng.choice(inks, size=k, replace=False).tolist())
    else:
        els = set(rng.choice(pool, size=int(rng.integers(3, 7)), replace=False).tolist())
    pair: list[str] = []
    if seed % 3 == 0:
        pairs = [p for p in OVERLAP_PAIRS if anode not in p]
        pair = list(pairs[(seed // 3) % len(pairs)])
        els |= set(pair)
    els_l = sorted(els)
    if kind == "drawing" and anode != "Cu":
        particle = ["Cu", "Zn"]
    else:
        particle = sorted(rng.choice(els_l, size=2, replace=False).tolist())
    speckle = str(rng.choice(els_l))
    h, w = _size(index)
    return ScanSpec(
        seed, kind, h, w, anode, kv, float(math.exp(rng.uniform(math.log(500), math.log(5000)))),
        els_l, particle, speckle, pair, float(rng.uniform(-0.010, 0.010)),
        float(rng.uniform(-2e-4, 2e-4)),
    )


def make(spec: ScanSpec, work: Path) -> tuple[Any, Path]:
    """Write the scan of ``spec`` and convert it; returns (truth, datastack path).

    A scan already made in ``work`` (its ``.done`` marker written after the conversion) is
    reused: the scans are generated once, the identification can be rerun on them.
    """
    from maxrf.convert import convert
    from maxrf.synth import load_truth, make_scan

    stem = work / f"scan{spec.seed}_{spec.height}x{spec.width}"
    done = stem.with_suffix(".done")
    if done.exists():
        return load_truth(stem.with_name(stem.name + ".truth.json")), stem.with_suffix(".datastack")
    truth = make_scan(
        stem.with_suffix(".rpl"), height=spec.height, width=spec.width, channels=4096,
        seed=spec.seed, elements=spec.elements, anode=spec.anode, tube_kv=spec.tube_kv,
        counts_per_pixel=spec.counts_per_pixel, speckle_element=spec.speckle_element,
        n_speckles=4, particle_elements=tuple(spec.particle_elements), header_calibration=True,
        overwrite=True,
    )
    out = stem.with_suffix(".datastack")
    convert(stem.with_suffix(".rpl"), out, overwrite=True)
    for suffix in (".rpl", ".raw"):
        stem.with_suffix(suffix).unlink(missing_ok=True)
    done.write_text("ok")
    return truth, out


def generate(seeds: list[int], work: Path, index0: int = 0, log: Any = print) -> None:
    """Make (once) the scans of ``seeds`` in ``work``."""
    for index, seed in enumerate(seeds):
        t0 = time.perf_counter()
        spec = scan_spec(seed, index0 + index)
        make(spec, work)
        log(f"made scan {seed} {spec.height}x{spec.width} ({time.perf_counter() - t0:.0f} s)")


def detectable(truth: Any) -> dict[str, float]:
    """Best significance (sigma) of each truth element's strongest line in a pixel spectrum."""
    from maxrf import physics
    from maxrf.synth import expected_spectra

    e = np.asarray(truth.energies, dtype=float)
    out: dict[str, float] = {}
    for el in truth.elements:
        lines = physics.element_lines(el, truth.tube_kv)
        lines = [ln for ln in lines if e[0] < ln.energy_keV < e[-1] and ln.energy_keV > 0.8]
        if not lines:
            out[el] = 0.0
            continue
        tmpl = physics.element_spectrum(el, e, tube_kv=truth.tube_kv,
                                        fwhm_at_6keV=truth.fwhm_at_6keV)
        m = np.asarray(truth.maps[el], dtype=float)
        pixels = {tuple(int(v) for v in np.unravel_index(int(np.argmax(m)), m.shape))}
        if truth.particle_pixel is not None and el in truth.particle_elements:
            pixels.add(tuple(int(v) for v in truth.particle_pixel))
        if el == truth.speckle_element:
            for c in np.asarray(truth.speckle_centroids).reshape(-1, 2):
                pixels.add((int(round(c[0])), int(round(c[1]))))
        best = 0.0
        for r, c in pixels:
            spec = expected_spectra(truth, slice(r, r + 1))[0, c]
            own = m[r, c] * tmpl
            # the strongest line where it stands (area in +-1 FWHM over the counting noise)
            for ln in sorted(lines, key=lambda x: -x.rel_intensity)[:4]:
                win = np.abs(e - ln.energy_keV) <= physics.fwhm_keV(ln.energy_keV, truth.fwhm_at_6keV)
                tot = float(spec[win].sum())
                if tot > 0:
                    best = max(best, float(own[win].sum()) / math.sqrt(tot))
        out[el] = best
    return out


def score_scan(spec: ScanSpec, truth: Any, res: Any, seconds: float) -> dict[str, Any]:
    """Calls, detectability, confidences and unexplained instrument peaks of one scan."""
    from maxrf.identify.instrument import instrument_windows, match_instrument

    z = detectable(truth)
    true = set(truth.elements)
    det = {el for el, v in z.items() if v >= 5.0}
    found = set(res.present)
    wins = instrument_windows(truth.anode, truth.tube_kv, truth.theta_deg, truth.fwhm_at_6keV,
                              air=False)
    scatter_unexplained = []
    for v in res.unexplained_keV:
        w = match_instrument(float(v), wins)
        if w is not None and w.kind in ("rayleigh", "compton"):
            scatter_unexplained.append({"keV": round(float(v), 3), "line": w.name})
    return {
        **asdict(spec),
        "truth": sorted(true), "detectable": sorted(det),
        "line_sigma": {k: round(v, 1) for k, v in z.items()},
        "present": sorted(found), "possible": list(res.possible),
        "false_positives": sorted(found - true), "missed": sorted(det - found),
        "tp": len(found & true), "fp": len(found - true), "fn": len(det - found),
        "confidences": [[r.element, round(float(r.confidence), 4), r.status, r.element in true]
                        for r in res.elements],
        "unexplained_keV": [round(float(v), 3) for v in res.unexplained_keV],
        "scatter_lines_unexplained": scatter_unexplained,
        "n_hotmax_spectra": len(res.spectra), "identify_s": round(seconds, 2),
    }


def reliability(scans: list[dict[str, Any]], n_bins: int = 10) -> dict[str, Any]:
    """Reliability curve: per confidence bin, mean confidence and fraction truly present."""
    conf = np.array([c[1] for s in scans for c in s["confidences"]], dtype=float)
    truth = np.array([c[3] for s in scans for c in s["confidences"]], dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    worst = 0.0
    for k in range(n_bins):
        sel = (conf >= edges[k]) & ((conf < edges[k + 1]) if k < n_bins - 1 else (conf <= 1.0))
        n = int(sel.sum())
        if n == 0:
            continue
        mc, fr = float(conf[sel].mean()), float(truth[sel].mean())
        # a bin's fraction is uncertain by its binomial error: the gap counts beyond it
        se = math.sqrt(max(mc * (1 - mc), 0.0025) / n)
        gap = abs(fr - mc)
        if n >= 10:
            worst = max(worst, gap)
        bins.append({"lo": round(float(edges[k]), 2), "hi": round(float(edges[k + 1]), 2), "n": n,
                     "mean_confidence": round(mc, 4), "fraction_present": round(fr, 4),
                     "gap": round(gap, 4), "binomial_se": round(se, 4)})
    return {"bins": bins, "max_gap_bins_n_ge_10": round(worst, 4), "n": int(conf.size)}


def _one(args: tuple[int, int, str]) -> dict[str, Any]:
    """Make (or reuse), identify and score one scan (a worker of :func:`run`)."""
    from maxrf.identify import identify

    seed, index, work = args
    spec = scan_spec(seed, index)
    t0 = time.perf_counter()
    truth, path = make(spec, Path(work))
    t1 = time.perf_counter()
    cal = {"gain_keV": truth.gain_keV * (1 + spec.gain_error),
           "offset_keV": truth.offset_keV + spec.offset_error_keV}
    res = identify(path, calibration=cal, anode=spec.anode, tube_kv=spec.tube_kv, write=False)
    dt = time.perf_counter() - t1
    s = score_scan(spec, truth, res, dt)
    s["make_s"] = round(t1 - t0, 1)
    return s


def run(seeds: list[int], work: Path, log: Any = print, index0: int = 0,
        keep: bool = True, workers: int = 1) -> dict[str, Any]:
    """Generate (or reuse), identify and score the scans of ``seeds`` (in this order: sizes
    by index, starting at ``index0``); ``keep=False`` deletes each scan after use."""
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    scans = []
    t_start = time.perf_counter()
    jobs = [(seed, index0 + k, str(work)) for k, seed in enumerate(seeds)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_one, jobs)
            for s in results:
                scans.append(s)
                _log(s, log)
    else:
        for job in jobs:
            scans.append(_one(job))
            _log(scans[-1], log)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    scans.sort(key=lambda s: seeds.index(s["seed"]))
    tp = sum(s["tp"] for s in scans)
    fp = sum(s["fp"] for s in scans)
    fn = sum(s["fn"] for s in scans)
    pairs: dict[str, dict[str, int]] = {}
    for s in scans:
        if s["forced_pair"]:
            d = pairs.setdefault("+".join(s["forced_pair"]), {"scans": 0, "both_found": 0})
            d["scans"] += 1
            d["both_found"] += int(set(s["forced_pair"]) <= set(s["present"]))
    return {
        "seeds": list(seeds),
        "n_scans": len(scans),
        "shapes": sorted({f"{s['height']}x{s['width']}x4096" for s in scans}),
        "anodes": sorted({f"{s['anode']} {s['tube_kv']:g} kV" for s in scans}),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall_detectable": tp_det(scans) / max(tp_det(scans) + fn, 1),
        "tp": tp, "fp": fp, "fn_detectable": fn,
        "scatter_lines_unexplained": sum(len(s["scatter_lines_unexplained"]) for s in scans),
        "unexplained_peaks_total": sum(len(s["unexplained_keV"]) for s in scans),
        "overlap_pairs": pairs,
        "reliability": reliability(scans),
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "scans": scans,
    }


def _log(s: dict[str, Any], log: Any) -> None:
    log(f"scan {s['seed']} {s['kind']} {s['height']}x{s['width']} {s['anode']} {s['tube_kv']:g} kV "
        f"{s['counts_per_pixel']:.0f}/px: truth {s['truth']} present {s['present']} "
        f"fp {s['false_positives']} missed {s['missed']} scatter-unexpl "
        f"{len(s['scatter_lines_unexplained'])} ({s['identify_s']:.1f} s)")


def tp_det(scans: list[dict[str, Any]]) -> int:
    """Detectable truth elements called present."""
    return sum(len(set(s["detectable"]) & set(s["present"])) for s in scans)
