"""Quality of the automatic identification on held-out synthetic scans and real standards.

1. **Held-out synthetic scans** (the headline; :mod:`benchmarks.identify_scans`): 50 scans
   drawn from seeds 7000..7049, never used while developing (development used seeds
   0..9 of the same generator), drawings and paintings, 4096 channels, 64 x 64 to
   400 x 400 pixels (one 400 x 400, one 160 x 160, two 96 x 96, the rest 64 x 64 / 64 x 96
   to keep the run bounded on a shared 2-core machine), Rh / Mo / W / Cu anodes at 30 to
   50 kV, 500 to 5000 counts per pixel, overlap pairs forced in every third scan, the
   calibration given with an error within its stated accuracy (offset +-10 eV). Measured:
   precision of ``present``; recall of the elements whose strongest line is 5 sigma above
   the counting noise of some pixel; the reliability curve of the confidences; anode
   Rayleigh / Compton lines left unexplained. The scans are generated once into
   ``benchmarks/work/identify-holdout`` and reused by later runs.
2. **Single spectra**: ``N_SPECTRA`` "hotmax-like" spectra from
   :func:`maxrf.synth.synth_spectrum` (1 to 4 elements of 500-3000 counts each, Poisson
   noise, pile-up), identified one by one (:func:`maxrf.identify.identify_spectrum`).
3. **Real spectra** of pure-element standards (Bruker, Rh, 50 kV; tests/data/spectra),
   calibrated from their counts alone: is the standard's element present with the highest
   confidence, which other elements are present and at which level (trace = fitted line
   counts < 1 % of the main element's), are the tube's lines all explained.

The former set of 24 + 12 scans of 40 x 50 x 2048 (:func:`run_scans`) can still be run
with ``python -m benchmarks.bench_identify legacy``.

Run from the repo root: ``python -m benchmarks.bench_identify [workers]`` (or through
``benchmarks/run.py``); writes ``benchmarks/results/identify.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import WORK, save

PIGMENTS = [
    "S", "K", "Ca", "Ti", "Cr", "Mn", "Fe", "Co", "Cu", "Zn",
    "As", "Se", "Sr", "Cd", "Sn", "Sb", "Ba", "Hg", "Pb", "Au",
]  # fmt: skip
OVERLAP_PAIRS = [("Pb", "As"), ("Pb", "S"), ("Ba", "Ti"), ("Hg", "Au"), ("Cu", "Zn"), ("Mn", "Fe")]
N_SCANS = 24
#: scans of the stress set: 6 x fewer counts per pixel
N_LOW = 12
LOW_COUNTS = 500.0
N_SPECTRA = 30
SPECTRA = Path(os.environ.get("MAXRF_SPECTRA",
                              Path(__file__).resolve().parents[1] / "tests" / "data" / "spectra"))
#: worker processes for the held-out scans
WORKERS = 3


def _scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp, "fp": fp, "fn": fn,
    }


def scan_elements(seed: int) -> list[str]:
    """The elements painted in synthetic scan ``seed``."""
    rng = np.random.default_rng(10_000 + seed)
    k = int(rng.integers(3, 7))
    els = set(rng.choice(PIGMENTS, size=k, replace=False).tolist())
    if seed % 4 == 0:
        els |= set(OVERLAP_PAIRS[(seed // 4) % len(OVERLAP_PAIRS)])
    return sorted(els)


def run_scans(n: int, work: Path, counts: float = 3000.0, seed0: int = 0) -> dict:
    from maxrf.convert import convert
    from maxrf.identify import identify
    from maxrf.synth import make_scan

    per_scan = []
    tp = fp = fn = 0
    el_stats: dict[str, dict[str, int]] = {el: {"tp": 0, "fn": 0, "fp": 0} for el in PIGMENTS}
    pair_stats = {"+".join(p): {"scans": 0, "both_found": 0} for p in OVERLAP_PAIRS}
    t_ident = 0.0
    n_spectra = 0
    for seed in range(seed0, seed0 + n):
        els = scan_elements(seed)
        rng = np.random.default_rng(20_000 + seed)
        stem = work / f"scan{seed}"
        truth = make_scan(
            stem.with_suffix(".rpl"), height=40, width=50, channels=2048, seed=seed, elements=els,
            speckle_element=str(rng.choice(els)), n_speckles=4,
            particle_elements=tuple(rng.choice(els, size=2, replace=False).tolist()),
            header_calibration=True, counts_per_pixel=counts, overwrite=True,
        )
        ds = convert(stem.with_suffix(".rpl"), stem.with_suffix(".datastack"), overwrite=True)
        t0 = time.perf_counter()
        res = identify(ds)
        dt = time.perf_counter() - t0
        t_ident += dt
        n_spectra += len(res.spectra)
        found, true = set(res.present), set(truth.elements)
        tp += len(found & true)
        fp += len(found - true)
        fn += len(true - found)
        for el in true:
            el_stats.setdefault(el, {"tp": 0, "fn": 0, "fp": 0})["tp" if el in found else "fn"] += 1
        for el in found - true:
            el_stats.setdefault(el, {"tp": 0, "fn": 0, "fp": 0})["fp"] += 1
        for pair in OVERLAP_PAIRS:
            if set(pair) <= true:
                key = "+".join(pair)
                pair_stats[key]["scans"] += 1
                pair_stats[key]["both_found"] += int(set(pair) <= found)
        per_scan.append({
            "seed": seed, "truth": sorted(true), "present": sorted(found),
            "false_positives": sorted(found - true), "missed": sorted(true - found),
            "possible": res.possible, "n_hotmax_spectra": len(res.spectra),
            "identify_s": round(dt, 2), "theta_deg": round(truth.theta_deg, 1),
            "fwhm_at_6keV": round(truth.fwhm_at_6keV, 4),
        })
        print(f"scan {seed:2d}: truth {sorted(true)} present {sorted(found)} "
              f"({len(res.spectra)} spectra, {dt:.1f} s)", flush=True)
        shutil.rmtree(stem.with_suffix(".datastack"), ignore_errors=True)
    return {
        "n_scans": n,
        "scan_shape": [40, 50, 2048],
        "counts_per_pixel": counts,
        "hotmax": "maxrf.hotmax.HotmaxAtlas (grouped hotmax spectra, stored baselines/envelopes)",
        **_scores(tp, fp, fn),
        "per_element": {el: s for el, s in el_stats.items() if any(s.values())},
        "overlap_pairs": pair_stats,
        "identify_seconds_total": round(t_ident, 1),
        "identify_seconds_per_hotmax_spectrum": round(t_ident / max(n_spectra, 1), 3),
        "scans": per_scan,
    }


def run_spectra(n: int) -> dict:
    from maxrf.identify import identify_spectrum
    from maxrf.synth import synth_spectrum

    tp = fp = fn = 0
    errors = []
    t0 = time.perf_counter()
    for seed in range(n):
        rng = np.random.default_rng(seed)
        els = list(rng.choice(PIGMENTS, size=int(rng.integers(1, 5)), replace=False))
        amps = {str(el): float(rng.uniform(500, 3000)) for el in els}
        channels = 2048
        gain = rng.uniform(0.97, 1.03) * 41.5 / channels
        e = rng.uniform(-1.0, -0.1) + gain * np.arange(channels)
        y = synth_spectrum(amps, e, tube_kv=40.0, theta_deg=float(rng.uniform(85, 115)),
                           fwhm_at_6keV=float(rng.uniform(0.13, 0.16)), pileup=True, rng=rng)
        found = set(identify_spectrum(y, e, tube_kv=40.0).present())
        true = set(amps)
        tp += len(found & true)
        fp += len(found - true)
        fn += len(true - found)
        if found != true:
            errors.append({"seed": seed, "counts": {k: round(v) for k, v in amps.items()},
                           "present": sorted(found)})
    return {"n_spectra": n, **_scores(tp, fp, fn), "seconds": round(time.perf_counter() - t0, 1),
            "errors": errors}


def run_real() -> dict:
    from maxrf.identify import TRACE_FRACTION, identify, instrument_windows, match_instrument
    from maxrf.io.spectra import read_spectrum

    if not SPECTRA.is_dir():
        return {"skipped": f"no spectra in {SPECTRA}"}
    out = {}
    for path in sorted(SPECTRA.glob("*.msa")):
        el = path.name.split("_")[0]
        t0 = time.perf_counter()
        res = identify(read_spectrum(path))
        present = [r for r in res.elements if r.status == "present"]
        others = [r for r in present if r.element != el]
        out[path.name] = {
            "standard": el,
            "main_present_with_highest_confidence": bool(present and present[0].element == el),
            "present": {r.element: round(r.relative, 5) for r in present},
            "non_trace_others": [r.element for r in others if r.relative >= TRACE_FRACTION],
            "compton_labelled": any(p["kind"] == "compton" for p in res.instrument),
            "rayleigh_labelled": any(p["kind"] == "rayleigh" for p in res.instrument),
            "unexplained_keV": [round(float(v), 3) for v in res.unexplained_keV],
            "scatter_lines_unexplained": [
                round(float(v), 3) for v in res.unexplained_keV
                if match_instrument(v, instrument_windows(
                    "Rh", res.tube_kv, res.spectra[0].theta_deg, res.spectra[0].fwhm_at_6keV,
                    air=False)) is not None],
            "lines": {r.element: r.evidence_text() for r in present},
            "seconds": round(time.perf_counter() - t0, 2),
        }
    return out


def main(workers: int = WORKERS, n_spectra: int = N_SPECTRA) -> dict:
    import subprocess

    from benchmarks import identify_scans

    try:  # which code was measured
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    work = WORK / "identify-holdout"
    work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(identify_scans.HOLDOUT_SEED0, identify_scans.HOLDOUT_SEED0 + 50))
    holdout = identify_scans.run(seeds, work, log=lambda m: print(m, flush=True), workers=workers)
    spectra = run_spectra(n_spectra)
    real = run_real()
    rel = holdout["reliability"]
    print(f"held-out scans: precision {holdout['precision']:.3f} recall (5 sigma) "
          f"{holdout['recall_detectable']:.3f} (tp {holdout['tp']}, fp {holdout['fp']}, fn "
          f"{holdout['fn_detectable']}); reliability max gap {rel['max_gap_bins_n_ge_10']:.3f}; "
          f"anode scatter lines unexplained {holdout['scatter_lines_unexplained']}")
    print(f"single spectra: precision {spectra['precision']:.3f} recall {spectra['recall']:.3f}")
    return {
        "description": __doc__.strip().splitlines()[0],
        "development_seeds": "0..9 of benchmarks.identify_scans (never measured here)",
        "code_commit": commit,
        "precision": holdout["precision"],
        "recall": holdout["recall_detectable"],
        "reliability_max_gap": rel["max_gap_bins_n_ge_10"],
        "scatter_lines_unexplained": holdout["scatter_lines_unexplained"],
        "holdout": holdout,
        "synthetic_spectra": spectra,
        "real_spectra": real,
    }


def main_legacy(n_scans: int = N_SCANS) -> dict:
    """The former benchmark: 24 + 12 scans of 40 x 50 x 2048, Rh, 40 kV."""
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="identify-", dir=WORK))
    try:
        scans = run_scans(n_scans, work)
        low = run_scans(N_LOW, work, counts=LOW_COUNTS, seed0=1000) if N_LOW else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"synthetic_scans": scans, "synthetic_scans_low_counts": low}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "legacy":
        print(json.dumps(main_legacy(), indent=1, default=float)[:2000])
        sys.exit(0)
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else WORKERS)
    print(save("identify", result))
    print(json.dumps({k: result[k] for k in ("precision", "recall", "reliability_max_gap")}, indent=1))
