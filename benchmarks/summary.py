"""Write the README's benchmark table from benchmarks/results/*.json (``python -m benchmarks.summary``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.common import RESULTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _smax_cpu_note(c: dict) -> str:
    """The CPU ratio of the other convert variant: with the smoothed max (results from issue
    17 on, where the default has none) or without it (earlier results)."""
    if "ratio_cpu_convert_seed_max_to_numpy" in c:
        return f"with the smoothed max (`--seed-max`) {c['ratio_cpu_convert_seed_max_to_numpy']:.1f}x"
    return f"without the smoothed max {c['ratio_cpu_convert_without_smoothed_max_to_numpy']:.1f}x"


def _spread(c: dict, key: str) -> str:
    """``(median of N pairs, LO-HI)`` for results measured as interleaved pairs, else ''."""
    p = c.get(key)
    if not p:
        return ""
    r = p["ratios"]
    return f" (median of {len(r)} interleaved pairs, {min(r):.1f}-{max(r):.1f})"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows() -> list[str]:
    out = ["| measure | result | target |", "|---|---|---|"]
    c = _load("convert")
    if c:
        gb = c["cube_bytes"] / 2**30
        mbs = c["throughput_MB_s"]["maxrf_convert"]
        load = c.get("load_average")
        if load:  # (1, 5, 15 min) averages, or the 1 min one in older results
            start, end = (v[0] if isinstance(v, list) else v for v in (load["start"], load["end"]))
        busy = (f" (machine load average {start:.0f}-{end:.0f} on {load['cpus']} cores)"
                if load and max(start, end) > 3 else "")
        out += [
            f"| convert {gb:.0f} GiB vs one numpy pass over the raw file, read from disk{busy} "
            f"| {c['ratio_convert_to_numpy_cold_cache']:.1f}x the numpy time"
            f"{_spread(c, 'cold_pairs')} | within 1.2x |",
            f"| the same vs a numpy pass over the page-cached file "
            f"| {c['ratio_convert_to_numpy']:.1f}x{_spread(c, 'warm_pairs')}"
            + (f" (CPU time {c['ratio_cpu_convert_to_numpy']:.1f}x, {_smax_cpu_note(c)}; convert "
               f"runs on both cores, numpy on one"
               + (f"; convert's CPU over the two cores {c['ratio_cpu_two_cores_to_numpy']:.1f}x "
                  f"numpy's, what an idle machine would give at best"
                  if "ratio_cpu_two_cores_to_numpy" in c else "")
               + ")" if "ratio_cpu_convert_to_numpy" in c else "")
            + " | within 3x |",
            f"| convert throughput vs the seed's ancestor (about 30 MB/s, three reads) "
            f"| {mbs:.0f} MB/s: {mbs / 30:.0f}x; {c['speedup_vs_seed_style']:.1f}x our emulation of it "
            f"| 10x |",
            f"| max + sum + argmax added to convert "
            f"| {100 * c.get('reductions_overhead_without_smoothed_max', c['reductions_overhead']):+.0f}% "
            f"| < 10% |",
        ]
        if "ratio_convert_seed_max_to_numpy" in c:  # the smoothed max on demand (issue 17)
            per_gib = c["cpu_seconds_per_GiB"]
            extra = per_gib["maxrf_convert_seed_max"] - per_gib["maxrf_convert"]
            out += [f"| the same with the seed's smoothed max spectrum in the pass (`--seed-max`) "
                    f"| {c['ratio_convert_seed_max_to_numpy']:.1f}x | |",
                    f"| the seed's smoothed max computed by the first `ds.max_spectrum()` (one pass "
                    f"over the stored cube, then stored) "
                    f"| {per_gib['seed_max_first_call']:.1f} CPU s/GiB "
                    f"(in convert's pass: +{extra:.1f}) "
                    f"| once per store, for the seed's call only |"]
        elif "ratio_convert_without_smoothed_max_to_numpy" in c:
            out += [f"| the same without the smoothed max spectrum (`--no-seed-max`) "
                    f"| {c['ratio_convert_without_smoothed_max_to_numpy']:.1f}x | within 3x |"]
        if "ratio_convert_none_to_numpy" in c:
            name, level = c.get("default_compression", {}).get("codec", ["lz4", 1])
            dflt = c["codecs"].get(f"{name}-{level}", c["codecs"].get(name))
            zstd = c["codecs"].get("zstd-1", c["codecs"].get("zstd"))
            out += [
                f"| convert `--compression none` vs the page-cached numpy pass "
                f"| {c['ratio_convert_none_to_numpy']:.1f}x | within 3x |",
                f"| default cube compression (blosc {name} level {level} + bitshuffle, crc32c) "
                f"| ratio {c['compression_ratio_default']:.1f}, {dflt['encode_MB_s']:.0f} MB/s per thread "
                f"(zstd: ratio {zstd['ratio']:.1f}, "
                f"{zstd['encode_MB_s']:.0f} MB/s) | fastest that compresses counts well |",
            ]
        out += [
            f"| convert peak RSS, cube {c['peak_rss']['cube_over_budget']:.0f}x the budget "
            f"| {c['peak_rss']['peak_rss_MB']:.0f} MB (budget {c['peak_rss']['budget_MB']} MB) "
            f"| < budget + 300 MB |",
        ]
    m = _load("maps")
    if m:
        out += [
            f"| get_peakmaps vs the seed's per-peak reads ({m['n_peaks_seed_comparison']} peaks, "
            f"1 GiB) | {m['speedup_get_peakmaps_vs_seed']:.1f}x faster, equal maps | >= 10x |",
            f"| get_peakmaps vs one numpy pass over the stored cube "
            f"| {m['ratio_get_peakmaps_to_numpy']:.2f}x | within 2x |",
            f"| element_maps(method='fit') vs one numpy pass "
            f"| {m['ratio_element_maps_fit_to_numpy']:.2f}x | within 2x |",
            f"| peak maps + element fit in the same pass | {m['ratio_combined_to_numpy']:.2f}x | |",
        ]
    i = _load("identify")
    if i and "holdout" in i:
        h = i["holdout"]
        out.append(f"| identification on {h['n_scans']} held-out synthetic scans (drawings, paintings; "
                   f"64 x 64 to 400 x 400 x 4096; Rh, Mo, W, Cu anodes; overlap pairs) "
                   f"| precision {h['precision']:.3f}, recall {h['recall_detectable']:.3f} (lines > 5 sigma) "
                   f"| >= 0.98 / >= 0.95 |")
        bins = ", ".join(f"{b['lo']:.1f}-{b['hi']:.1f}: {b['fraction_present']:.3f} present at "
                         f"{b['mean_confidence']:.3f} (n {b['n']})"
                         for b in h["reliability"]["bins"] if b["n"] >= 10)
        out.append(f"| identification: confidence reliability (bins with n >= 10), anode scatter "
                   f"lines unexplained | max gap {i['reliability_max_gap']:.3f} ({bins}); "
                   f"{i['scatter_lines_unexplained']} unexplained | <= 0.1; 0 |")
    elif i:
        s = i["synthetic_scans"]
        out.append(f"| identification on {s['n_scans']} random synthetic scans "
                   f"| precision {s['precision']:.2f}, recall {s['recall']:.2f} "
                   f"| >= 0.95 / >= 0.9 |")
    sp = _load("speckles")
    if sp:
        out.append(f"| speckle height scan, 100 heights on 1000 x 1000 "
                   f"| {sp['scan']['maxrf_s']:.2f} s, {sp['scan']['speedup']:.0f}x the seed, equal "
                   f"| a few seconds |")
    sg = _load("segmentation")
    if sg:
        e, cp, spd = sg["evaluation"], sg["clean_paper"], sg["speed"]
        out += [
            f"| segmentation of synthetic drawings ({len(e['seeds'])} held-out seeds: ink strokes "
            f"1-4 px, speckles r 1-3 px at 3-12 x noise, a third on strokes) "
            f"| particles precision {e['precision']:.2f}, recall {e['recall']:.2f}, centroid error "
            f"{e['centroid_error_px_mean']:.2f} px; stroke IoU {e['stroke_iou_pooled']:.2f} "
            f"(seed atlas: precision {e['seed_atlas']['precision']:.2f}) "
            f"| >= 0.9 / >= 0.9, < 0.5 px, IoU >= 0.7 |",
            f"| segmentation of clean paper | {cp['false_per_10000_px']:.2f} false particles per "
            f"10,000 px ({cp['pixels']:,} px) | <= 1 |",
            f"| segment_map on 1000 x 1000 | {spd['segment_map_s']:.1f} s "
            f"({spd['ratio_to_atlas_scan']:.1f}x the atlas height scan in the same run"
            + (f", load average {spd['load_average_1min']:.0f} on 2 cores"
               if "load_average_1min" in spd else "") + "), peak "
            f"{spd['peak_bytes_per_pixel']:.0f} bytes/pixel | a few seconds |",
        ]
    v = _load("viewer")
    if v:
        p = v["pixel_click_cold_disk"]
        out.append(f"| viewer pixel click on a 1 GiB cube | median {p['median_ms']:.0f} ms, "
                   f"p95 {p['p95_ms']:.0f} ms | < 200 ms |")
    f = _load("faults")
    if f:
        ops = ", ".join(f"{op} {k['survived']}/{k['kills']}" for op, k in f["sigkill"].items())
        ok = "all tests passed" if f["all_passed"] else "**FAILED**: " + "; ".join(f["failures"])
        out += [
            f"| SIGKILL at seeded random moments (seeds the suite does not use), survived / run "
            f"| {ops} ({ok}) | every kill: old or new state, complete |",
            f"| hostile input, hypothesis examples tried in one run "
            f"| {f['hypothesis_examples_total']} over {len(f['hypothesis'])} properties "
            f"(headers, raw sizes, viewer URLs and queries) | no exception but maxrf.errors |",
        ]
    cb = _load("calibration")
    if cb:
        sy, re_ = cb["synthetic"], cb["real"]
        out += [
            f"| auto calibration, {sy['n']} hard synthetic spectra (6 anodes, 5-20 eV/ch, offsets "
            f"-1.2..+0.3 keV, blanks and line-rich; seeds {cb['seeds']}) "
            f"| {100 * sy['within_10_eV']:.0f}% within 10 eV; {100 * sy['good']:.0f}% called good"
            + (f"; median {cb['cpu_seconds_per_spectrum']['median']:.2f} CPU s per spectrum"
               if "cpu_seconds_per_spectrum" in cb else "")
            + " | >= 97% |",
            *([f"| the same fit started from the true axis (precision ceiling of the peak fits) "
               f"| {100 * sy['from_true_axis_within_10_eV']:.0f}% within 10 eV; of the misses, "
               f"{sy['missed_by_choice']} a wrong choice of lines, {sy['missed_by_precision']} the "
               f"peaks' precision | |"] if "from_true_axis_within_10_eV" in sy else []),
            *([f"| Cramér-Rao bound of the axis from the peaks, line shapes known (the rate any "
               f"unbiased calibration reaches at best) | {100 * sy['bound_within_10_eV']:.0f}% within 10 eV; "
               f"on the {sy['pinned_by_the_data']} spectra it pins (>= 99 %) the method is within 10 eV "
               f"on {100 * (sy['within_10_eV_where_pinned'] or 0):.0f}% | |"]
              if "bound_within_10_eV" in sy else []),
            *([f"| the same bound for a method that does not know the tube lines' ratios (filter, "
               f"matrix), the Fano factor or the Compton peak's broadening and place "
               f"| {100 * sy['robust_bound_within_10_eV']:.0f}% within 10 eV | |"]
              if "robust_bound_within_10_eV" in sy else []),
            f"| results > 30 eV off called \"good\" (silent failures) "
            f"| {sy['silent_failures_over_30_eV_called_good']} of {sy['over_30_eV']} such results "
            f"| 0 |",
            *([f"| the same started from the true axis (`refine_calibration`): results > 30 eV off "
               f"called \"good\" | {sy['from_true_axis_silent_failures']} | 0 |"]
              if "from_true_axis_silent_failures" in sy else []),
            f"| auto calibration on the {re_['n']} real NIST spectra vs the instrument's "
            f"| worst {re_['worst_error_eV']:.1f} eV; all good: {re_['all_good_within_10_eV']} "
            f"| within 10 eV, good |",
        ]
    rg = _load("registration")
    if rg:
        sy, big = rg["synthetic"], rg.get("large_photo", {})
        q = sy["auto_quality_counts"]
        out += [
            f"| automatic registration, {sy['n']} held-out synthetic photos (scale 2-6, +-5 deg, "
            f"perspective, margin, JPEG 85) | mean error {sy['auto_mean_px_mean']:.2f} px (worst seed "
            f"{sy['auto_mean_px_worst']:.2f}), max {sy['auto_max_px_median']:.2f} px median, "
            f"{sy['auto_max_px_worst']:.2f} worst; mean < 0.5 on {sy['auto_share_mean_below_0.5']:.0%}, "
            f"max < 1 on {sy['auto_share_max_below_1']:.0%} of seeds; verdicts {q['good']} good, "
            f"{q['doubtful']} doubtful, {q['failed']} failed"
            + (f"; {sy['auto_max_above_1_but_good']} called good with max above 1 px "
               f"(worst good {sy['auto_good_max_px_worst']:.2f})"
               if "auto_max_above_1_but_good" in sy else "")
            + (f"; {sy['median_cpu_seconds']:.0f} CPU s each (median)" if "median_cpu_seconds" in sy else "")
            + " | mean < 0.5, max < 1 scan px |",
            f"| registration from 4 exact point pairs | worst {sy['points_max_px_worst']:.1e} px "
            f"| < 0.1 px |",
            f"| photo of another artwork | {sy['other_artwork_failed']}/{sy['n']} reported failed "
            f"| all failed |",
        ]
        card = rg.get("synthetic_card")
        if card:
            qc = card["auto_quality_counts"]
            out.append(
                f"| the same photos with the grey card over {card['card_over_scan']:.0%} of the scan's "
                f"width | called good while max error > 1 px: {card['auto_max_above_1_but_good']} "
                f"(worst good {card['auto_good_max_px_worst'] or 0:.2f} px); verdicts {qc['good']} good, "
                f"{qc['doubtful']} doubtful, {qc['failed']} failed; max < 1 px on "
                f"{card['auto_share_max_below_1']:.0%}, worst {card['auto_max_px_worst']:.2f} px "
                f"| never good while wrong |")
        for one in big if isinstance(big, list) else [big] if big else []:
            cpu = f", {one['cpu_seconds']:.0f} CPU s" if "cpu_seconds" in one else ""
            load = (f"load average {one['loadavg_before'][0]:.0f} on 2 cores" if "loadavg_before" in one
                    else "machine shared by 8 jobs")
            kind = f"{one['artwork']} " if "artwork" in one else ""
            out.append(f"| register onto an 8000 x 6000 JPEG "
                       f"({kind}{one['scan_px'][0]} x {one['scan_px'][1]} scan) "
                       f"| {one['seconds']:.0f} s wall{cpu}, peak RSS {one['peak_rss_MB']:.0f} MB, "
                       f"mean error {one['mean_px']:.2f} scan px "
                       f"(max {one.get('max_px', float('nan')):.2f}), "
                       f"verdict {one['quality']} ({load}) "
                       "| < 60 s, registered, peak RSS < 556 MB (budget + 300) |")
    ev = _load("everyday")
    if ev:
        sn, cp, pl = ev["seed_notebook"], ev["convert_pass"], ev["peak_list"]
        out += [
            f"| the seed's get_slices(ds.energies(), ds.max_spectrum()) on raw counts "
            f"| {sn['peaks_smoothed_max']} peaks (on the raw max spectrum: {sn['peaks_raw_max']}) "
            f"| the scan's real peaks |",
            f"| smoothed max spectrum in convert's pass (`--seed-max`; by default the first "
            f"`ds.max_spectrum()` computes it) "
            f"| {cp['ratio']:.1f}x the CPU of the bare max/mean pass"
            + (f" (exact, pruned; every pixel by FFT: {cp['ratio_fft_every_pixel']:.1f}x)"
               if "ratio_fft_every_pixel" in cp else "") + " | |",
            f"| peak maps and hotmax share one peak list "
            f"| {pl['peak_maps']} = {pl['hotmax_peaks']} peaks, at least "
            f"{pl['min_separation_fwhm']:.1f} FWHM apart | no near-duplicates |",
        ]
    mp = _load("multi_plot")
    if mp:
        by = {r["images"]: r for r in mp["rows"]}
        big = max(n for n, r in by.items() if r["cpu_seconds_shared_from_start"] is not None)
        out.append(
            f"| multi_plot of {big} / {max(by)} peak maps (the seed's multi_plot(*peak_maps_histeq)) "
            f"| {by[big]['cpu_seconds_maxrf']:.1f} s / {by[max(by)]['cpu_seconds_maxrf']:.1f} s CPU; "
            f"axes shared from the start as the seed: {by[big]['cpu_seconds_shared_from_start']:.1f} s "
            f"for {big} (quadratic) | grows as the number of images |")
    dc = _load("decompose")
    if dc:
        a = dc["accuracy"]
        out += [
            f"| decompose: {a['n']} held-out synthetic paintings (half with materials sharing "
            f"elements) | right {100 * a['right']:.0f}% (r >= 0.9 {100 * a['r_ge_0.9']:.0f}%, cosine >= 0.95 "
            f"{100 * a['cosine_ge_0.95']:.0f}%, ARI >= 0.8 {100 * a['ari_ge_0.8']:.0f}%); called good "
            f"{100 * a['called_good']:.0f}%, wrong but good {a['good_but_wrong']} "
            f"| r >= 0.9, cosine >= 0.95, ARI >= 0.8; no confident wrong answer |",
        ]
        sp = dc.get("speed")
        if sp:
            us, them = sp["maxrf_decompose"], sp["maxrf4u_nmf"]
            out.append(
                f"| decompose a {sp['cube_bytes'] / 2**30:.0f} GiB cube vs maxrf4u "
                f"{them['version'].split('==')[-1]}'s own NMF peak maps (its smoothed float32 datastack) "
                f"| {us['seconds']:.0f} s vs {them['seconds']:.0f} s wall ({sp['speedup_vs_maxrf4u']:.1f}x), "
                f"{us['cpu_seconds']:.0f} vs {them['cpu_seconds']:.0f} CPU s "
                f"({sp['cpu_speedup_vs_maxrf4u']:.1f}x); peak RSS {us['peak_rss_MB']} MB vs "
                f"{them['peak_rss_MB']} MB ({sp['memory_ratio_maxrf4u_over_ours']:.1f}x less); "
                f"{sp['decompose_over_numpy_pass']:.1f}x a numpy pass | >= 5x faster, 1/10 the memory |")
    lg = _load("large")
    if lg:
        out.append(f"| larger than RAM: {lg['cube_GB']:.0f} GB cube, {lg['ram_GB']:.0f} GB RAM "
                   f"| see the table below | |")
    return out


def large_rows() -> list[str]:
    lg = _load("large")
    if not lg:
        return []
    out = [f"Larger than memory ({lg['note']}; budget {lg['budget_MB']} MB, so the RSS limit is "
           f"{lg['rss_limit_MB']} MB):", "",
           "| step | seconds | cube reads | GB read from the cube | peak RSS (MB) | time / numpy pass |",
           "|---|---|---|---|---|---|"]
    for name, s in lg["summary"].items():
        rss = f"{s['peak_rss_MB']}"
        if name == "numpy_pass":
            # np.memmap of the raw file: its RSS counts the file pages mapped into the
            # process (page cache), so it is the time baseline, not a memory one
            rss += " (memmap: mapped file pages, the time baseline)"
        if "output_maps_MB" in s and "output_maps" in s:  # streamed to the store, not held
            rss += f" ({s['output_maps']} maps, {s['output_maps_MB']} MB, streamed to disk)"
        elif "output_maps_MB" in s:
            rss += f" (of which {s['output_maps_MB']} MB are the output maps)"
        if not s.get("rss_ok", True) and name != "numpy_pass":
            rss += " **over the limit**"
        gb = round(s["cube_reads"] * lg["cube_GB"], 1)
        out.append(f"| {name} | {s['seconds']} | {s['cube_reads']} | {gb} | {rss} | "
                   f"{s['ratio_to_numpy_pass']} |")
    ver = lg.get("steps", {}).get("verify", {})
    out += ["", "Cube reads count the engine's passes over the decoded cube (the bytes it read "
            "divided by the cube's size). Calibrate, identify, speckles and report use stored spectra "
            "and maps only; hotmax reads the chunks of its few pixels"
            + (f"; verify reads and decodes every stored chunk once ({ver['rchar'] / 1e9:.1f} GB "
               f"compressed) to check its checksum, chunk by chunk outside the engine, so it "
               f"is not counted as an engine pass"
               if "rchar" in ver else "") + "."]
    return out


def main() -> None:
    text = README.read_text()
    table = "\n".join(["<!-- BENCHMARKS -->", *rows(), "", *large_rows(), "<!-- /BENCHMARKS -->"])
    if "<!-- /BENCHMARKS -->" in text:
        text = re.sub(r"<!-- BENCHMARKS -->.*<!-- /BENCHMARKS -->", lambda _m: table, text, flags=re.S)
    else:
        text = text.replace("<!-- BENCHMARKS -->", table)
    README.write_text(text)
    print(table)


if __name__ == "__main__":
    main()
